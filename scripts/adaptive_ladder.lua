-- Picks the ladder from the source: no rung taller than the source, and no rung whose
-- target bitrate is far above what the source itself carries (it would only waste bytes).
local M = {}

-- height, target kbit/s (spool's H.264 table)
local LADDER = {
  { 144, 150 }, { 240, 300 }, { 360, 600 }, { 480, 1000 },
  { 720, 2500 }, { 1080, 4500 }, { 1440, 9000 }, { 2160, 18000 },
}

function M.plan(media, plan)
  local video = media.video
  local source_kbps = media.bit_rate and media.bit_rate / 1000 or math.huge
  local template = plan.profiles[1]
  local profiles = {}
  for _, rung in ipairs(LADDER) do
    local height, kbps = rung[1], rung[2]
    local fits = height <= video.height
    local worth_it = kbps <= source_kbps * 1.5
    if fits and (worth_it or #profiles == 0) then
      profiles[#profiles + 1] = {
        name = string.format("h264-%dp", height),
        codec = "h264",
        height = height,
        always_encode = #profiles == 0,
        preset = template.preset,
        bitrate_kbps = math.max(50, math.floor(math.min(kbps, source_kbps))),
      }
    end
  end
  if #profiles == 0 then
    -- A source below 144p still gets one always-encoded rung.
    profiles[1] = { name = "h264-144p", codec = "h264", height = 144, always_encode = true, preset = template.preset }
  end
  plan.profiles = profiles
  return plan
end

return M
