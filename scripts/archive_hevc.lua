-- Archive to HEVC: files already in HEVC are skipped; everything else gets one HEVC
-- encode at its own height (even, 144-2160), so nothing is upscaled or downscaled.
local M = {}

function M.on_discover(file)
  local video = file.media.video
  if video and video.codec == "hevc" then
    return { action = "skip", reason = string.format("already HEVC (%dx%d)", video.width, video.height) }
  end
  return { action = "accept" }
end

function M.plan(media, plan)
  local height = media.video.height
  if media.video.rotation == 90 or media.video.rotation == 270 then
    height = media.video.width
  end
  height = math.max(144, math.min(2160, height - height % 2))
  local rung = plan.profiles[1]
  rung.name = "hevc"
  rung.height = height
  rung.always_encode = true
  plan.profiles = { rung }
  return plan
end

return M
