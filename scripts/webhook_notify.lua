-- Posts job events to the webhook in the workflow's script.params (url, token).
-- A webhook that is down is logged; it never fails a job whose outputs are published.
local M = {}

local function post(event)
  local headers = {}
  if spool.params.token and spool.params.token ~= "" then
    headers["Authorization"] = "Bearer " .. spool.params.token
  end
  local ok, reply = pcall(spool.http.post, spool.params.url, event, { headers = headers, timeout = 5 })
  if not ok then
    spool.log.warn("webhook not delivered:", reply)
  elseif reply.status >= 300 then
    spool.log.warn("webhook answered", reply.status)
  end
end

function M.on_error(job, err)
  post({ event = "attempt_failed", job = job.id, input = job.input, task = err.task,
         attempt = err.attempt, error = err.message })
  return nil -- spool's own retry policy decides
end

function M.on_complete(job, manifest)
  local outputs = {}
  for _, o in ipairs(manifest.outputs) do
    outputs[#outputs + 1] = { profile = o.profile, path = job.out_dir .. "/" .. o.path, bytes = o.bytes }
  end
  post({ event = "succeeded", job = job.id, input = job.input, manifest = job.manifest,
         duration = manifest.source.duration, outputs = outputs })
end

return M
