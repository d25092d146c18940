// Command etcd is upstream etcd's own main (go.etcd.io/etcd/server/v3/etcdmain), at the version k8s.io/kubernetes
// v1.35.6 pins for its etcd client, for the API server of `make e2e` (docs/e2e.md).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
