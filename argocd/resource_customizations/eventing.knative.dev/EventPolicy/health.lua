-- Health of a Knative EventPolicy (eventing.knative.dev/v1alpha1), for Argo CD's argocd-cm key
-- resource.customizations.health.eventing.knative.dev_EventPolicy. Argo CD v3.5.1 ships no check for this kind, and
-- an object without one counts as done the moment it is applied: a sync wave would not wait for the policy to be in force.
-- Knative's aggregate `Ready` condition folds in SubjectsResolved (every `from` reference resolved to an OIDC
-- identity) and AuthenticationEnabled (False while the authentication-oidc feature is off: nothing is enforced).
-- A Ready the controller set for an older metadata.generation says nothing about the current spec, so it only
-- counts once status.observedGeneration has caught up (Argo CD's health.md asks custom checks to do this).
-- Runs in Argo CD's sandbox (gopher-lua = Lua 5.1, no string/math libraries): comparisons and `..` only.
local hs = {}
local generation = obj.metadata.generation
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the EventPolicy controller to report status"
  return hs
end
if generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the EventPolicy controller to observe generation " .. generation
  return hs
end
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    local reason = condition.reason or "NotReady"
    local message = condition.message or ""
    if condition.status == "True" then
      hs.status = "Healthy"
      hs.message = "EventPolicy is in force"
    elseif condition.status == "False" then
      hs.status = "Degraded"
      hs.message = reason .. ": " .. message
    else
      hs.status = "Progressing"
      hs.message = "EventPolicy is not in force yet (" .. reason .. "): " .. message
    end
    return hs
  end
end
hs.status = "Progressing"
hs.message = "Waiting for the EventPolicy's Ready condition"
return hs
