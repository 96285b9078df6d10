// Command registrar registers a CSI driver with the kubelet through the
// kubelet's plugin registration socket, as node-driver-registrar does. The
// Go module proxy refuses github.com/kubernetes-csi/node-driver-registrar, so
// the one-node test cluster uses this instead; it speaks the same
// pluginregistration/v1 API (GetInfo, NotifyRegistrationStatus) and takes
// node-driver-registrar's flags as the driver's chart passes them:
//
//	registrar --csi-address=/csi/csi.sock \
//	  --kubelet-registration-path=/var/lib/kubelet/plugins/csi-secrets-store/csi.sock
//
// registers the driver, whose socket the kubelet sees at the registration
// path, through /registration/<driver>-reg.sock. Like node-driver-registrar
// it offers registration only once the driver's socket accepts connections,
// and exits when the kubelet refuses the driver, so that its container
// restarts and registers again.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	registration "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

type registrar struct {
	registration.UnimplementedRegistrationServer
	name, endpoint string
}

func (r *registrar) GetInfo(context.Context, *registration.InfoRequest) (*registration.PluginInfo, error) {
	return &registration.PluginInfo{
		Type:              registration.CSIPlugin,
		Name:              r.name,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registration.RegistrationStatus) (*registration.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		log.Printf("kubelet refused %s: %s; exiting to register again", r.name, s.Error)
		go func() { time.Sleep(100 * time.Millisecond); os.Exit(1) }()
	} else {
		log.Printf("kubelet registered %s at %s", r.name, r.endpoint)
	}
	return &registration.RegistrationStatusResponse{}, nil
}

func main() {
	name := flag.String("driver-name", "secrets-store.csi.k8s.io", "CSI driver name")
	endpoint := flag.String("csi-address", "", "path of the driver's CSI socket (as the kubelet sees it, unless -kubelet-registration-path is set)")
	kubeletPath := flag.String("kubelet-registration-path", "", "path of the driver's CSI socket as the kubelet sees it")
	registrationDir := flag.String("plugin-registration-path", "/registration", "the kubelet's plugins_registry directory, as this container sees it")
	socket := flag.String("registration-socket", "", "path of this registrar's socket (default: <plugin-registration-path>/<driver-name>-reg.sock)")
	flag.Int("v", 0, "accepted for node-driver-registrar's flags; ignored")
	flag.Parse()
	csiAddress := *endpoint
	if *kubeletPath != "" {
		*endpoint = *kubeletPath
	}
	if *socket == "" && *kubeletPath != "" {
		*socket = filepath.Join(*registrationDir, *name+"-reg.sock")
	}
	if *endpoint == "" || *socket == "" {
		log.Fatal("-csi-address, and -registration-socket or -kubelet-registration-path, are required")
	}
	for {
		c, err := net.DialTimeout("unix", csiAddress, time.Second)
		if err == nil {
			c.Close()
			break
		}
		log.Printf("waiting for the driver's socket %s: %v", csiAddress, err)
		time.Sleep(500 * time.Millisecond)
	}
	_ = os.Remove(*socket)
	lis, err := net.Listen("unix", *socket)
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	registration.RegisterRegistrationServer(srv, &registrar{name: *name, endpoint: *endpoint})
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		srv.Stop()
		_ = os.Remove(*socket)
	}()
	if err := srv.Serve(lis); err != nil {
		log.Fatal(err)
	}
}
