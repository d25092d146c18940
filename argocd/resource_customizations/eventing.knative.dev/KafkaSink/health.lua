-- Health of a KafkaSink (eventing.knative.dev/v1alpha1, eventing-kafka-broker), for Argo CD's argocd-cm key
-- resource.customizations.health.eventing.knative.dev_KafkaSink. Argo CD v3.5.1 ships no check for this kind, and
-- an object without one counts as done the moment it is applied: the Broker's sync wave would not wait for the
-- dead-letter topic and the kafka-sink-receiver.
-- Knative's aggregate `Ready` condition folds in every other condition (control-plane/pkg/reconciler/base
-- IngressConditionSet: Addressable, DataPlaneAvailable, TopicReady, ConfigMapUpdated, ConfigParsed, ProbeSucceeded,
-- EventPoliciesReady).
-- A Ready the controller set for an older metadata.generation says nothing about the current spec, so it only
-- counts once status.observedGeneration has caught up (Argo CD's health.md asks custom checks to do this).
-- Runs in Argo CD's sandbox (gopher-lua = Lua 5.1, no string/math libraries): comparisons and `..` only.
local hs = {}
local generation = obj.metadata.generation
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the KafkaSink controller to report status"
  return hs
end
if generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the KafkaSink controller to observe generation " .. generation
  return hs
end
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    local reason = condition.reason or "NotReady"
    local message = condition.message or ""
    if condition.status == "True" then
      hs.status = "Healthy"
      hs.message = "KafkaSink is ready"
    elseif condition.status == "False" then
      hs.status = "Degraded"
      hs.message = reason .. ": " .. message
    else
      hs.status = "Progressing"
      hs.message = "KafkaSink is not ready yet (" .. reason .. "): " .. message
    end
    return hs
  end
end
hs.status = "Progressing"
hs.message = "Waiting for the KafkaSink's Ready condition"
return hs
