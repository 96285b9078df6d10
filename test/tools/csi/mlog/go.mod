// A stand-in for monis.app/mlog, which the Go module proxy refuses to serve.
// It provides only what secrets-store-csi-driver v1.6.1 calls, on top of klog.
module monis.app/mlog

go 1.24.0

require k8s.io/klog/v2 v2.130.1
