"""The notifications Knative Service of a render, for the serving, policy and upstream-install check tests."""

from tests.support import obj

NS = "notifications"


def ksvc(render):
    return obj(render, "serving.knative.dev", "Service", NS, "notifications")


def container(render):
    return ksvc(render)["spec"]["template"]["spec"]["containers"][0]
