package main

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

type podMeta struct {
	labels      map[string]string
	annotations map[string]string
}

func (m *podMeta) objectMeta() *metav1.ObjectMeta {
	return &metav1.ObjectMeta{Labels: m.labels, Annotations: m.annotations}
}
