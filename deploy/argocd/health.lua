-- Argo CD health check for rolecall's kinds (IamPolicy, IamRole, InstanceProfile,
-- Ec2InstanceBinding, IamGroup, IamUser; group iam.rolecall.dev). rolecall writes a Ready condition and
-- status.observedGeneration (kstatus conventions); the reasons are in src/conditions.rs.
--   Healthy:     Ready=True for the current generation
--   Degraded:    Ready=False with a reason that needs a person (InvalidSpec, Conflict, AwsError,
--                PasswordSecretMissing)
--   Progressing: not yet observed, an older generation, Ready Unknown, converging
--                (Reconciling, DependencyNotReady), or being deleted
local hs = {}

local function ready_condition()
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local function with_reason(condition)
  local message = condition.message or ""
  if condition.reason ~= nil and condition.reason ~= "" then
    if message == "" then
      return condition.reason
    end
    return condition.reason .. ": " .. message
  end
  return message
end

local ready = ready_condition()

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  if ready ~= nil and ready.reason == "Deleting" then
    hs.message = with_reason(ready)
  else
    hs.message = "Deleting: waiting for rolecall to clean up AWS"
  end
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for rolecall to report the Ready condition"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if ready.observedGeneration ~= nil and (observed == nil or ready.observedGeneration < observed) then
  observed = ready.observedGeneration
end
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for rolecall to observe generation " .. tostring(generation)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end

local needs_a_person = {
  InvalidSpec = true, Conflict = true, AwsError = true, PasswordSecretMissing = true,
}
if ready.status == "False" and needs_a_person[ready.reason] then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = with_reason(ready)
return hs
