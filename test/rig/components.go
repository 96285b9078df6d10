package rig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// process is a real component running for the tests.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func start(name, dir string, bin string, args ...string) (*process, error) {
	return startCmd(name, dir, exec.Command(bin, args...))
}

// startCmd starts cmd in its own process group, logging to dir/name.log.
func startCmd(name, dir string, cmd *exec.Cmd) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	return p, nil
}

// stop ends the process and waits for it.
func (p *process) stop() {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls ready until it succeeds, p exits, or the timeout passes.
func waitFor(p *process, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = ready(); err == nil {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited: %s", p.name, p.tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %w", timeout, err)
}

// ---- etcd and kube-apiserver ----

// APIServer is a real kube-apiserver on a real etcd.
type APIServer struct {
	etcd, apiserver *process
	URL             string
	Issuer          string
	PKI             *testPKI
	Admin           *rest.Config
	AdminClient     kubernetes.Interface
	AdminKubeconfig string
	// NoRightsKubeconfig authenticates a user with no RBAC permissions.
	NoRightsKubeconfig string
}

const saIssuer = "https://kubernetes.default.svc.cluster.local"

func StartAPIServer(dir, binDir string) (*APIServer, error) {
	s := &APIServer{Issuer: saIssuer}
	etcdPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	dataDir, err := os.MkdirTemp(tmpfsDir(), "vcp-etcd-")
	if err != nil {
		return nil, err
	}
	s.etcd, err = start("etcd", dir, filepath.Join(binDir, "etcd"),
		"--data-dir", dataDir, "--name", "default",
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	go func() { <-s.etcd.done; os.RemoveAll(dataDir) }()

	if s.PKI, err = newPKI(); err != nil {
		return s, err
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, s.PKI.CAPEM, 0o600); err != nil {
		return s, err
	}
	servingCert, servingKey, err := s.PKI.issue(dir, "apiserver", "127.0.0.1", nil, true)
	if err != nil {
		return s, err
	}
	saPub, saKey, err := writeSigningKey(dir)
	if err != nil {
		return s, err
	}
	port, err := FreePort()
	if err != nil {
		return s, err
	}
	s.URL = "https://127.0.0.1:" + strconv.Itoa(port)
	s.apiserver, err = start("kube-apiserver", dir, filepath.Join(binDir, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--tls-cert-file="+servingCert, "--tls-private-key-file="+servingKey, "--client-ca-file="+caFile,
		"--service-account-issuer="+s.Issuer, "--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range=10.96.0.0/24", "--authorization-mode=Node,RBAC",
		"--endpoint-reconciler-type=none", "--cert-dir="+filepath.Join(dir, "apiserver-certs"))
	if err != nil {
		return s, err
	}

	if s.AdminKubeconfig, err = s.kubeconfig(dir, "admin", "admin", []string{"system:masters"}); err != nil {
		return s, err
	}
	if s.NoRightsKubeconfig, err = s.kubeconfig(dir, "no-rights", "no-rights-provider", nil); err != nil {
		return s, err
	}
	if s.Admin, err = clientcmd.BuildConfigFromFlags("", s.AdminKubeconfig); err != nil {
		return s, err
	}
	s.Admin.QPS, s.Admin.Burst = 500, 1000 // the benchmark creates pods by the thousand
	if s.AdminClient, err = kubernetes.NewForConfig(s.Admin); err != nil {
		return s, err
	}
	err = waitFor(s.apiserver, 90*time.Second, func() error {
		body, err := s.AdminClient.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		if err != nil {
			return fmt.Errorf("%w: %s", err, body)
		}
		return nil
	})
	return s, err
}

func (s *APIServer) kubeconfig(dir, name, cn string, orgs []string) (string, error) {
	cert, key, err := s.PKI.issue(dir, name, cn, orgs, false)
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: s.URL, CertificateAuthorityData: s.PKI.CAPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificate: cert, ClientKey: key}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: name, Namespace: ProviderNamespace}
	cfg.CurrentContext = "test"
	path := filepath.Join(dir, name+".kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

func (s *APIServer) Stop() {
	if s == nil {
		return
	}
	s.apiserver.stop()
	s.etcd.stop()
}

// tmpfsDir keeps etcd's data in memory when /dev/shm exists.
func tmpfsDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// ---- Vault ----

// VaultServer is a real Vault dev server.
type VaultServer struct {
	proc *process
	// Addr is http://, or with OwnTLS https:// on Vault's own TLS listener.
	Addr string
	// CAFile is the CA of Vault's own TLS listener (OwnTLS), else "".
	CAFile string
	Root   *api.Client
	// TLS serves the same API over TLS, through a proxy in front of Vault
	// whose certificate a test can rotate (not with OwnTLS).
	TLS *VaultTLS
}

// Pid is the server's process id.
func (v *VaultServer) Pid() int { return v.proc.cmd.Process.Pid }

// VaultOptions say how a Vault dev server listens.
type VaultOptions struct {
	// OwnTLS serves Vault's API on its own TLS listener (-dev-tls), with a
	// CA of its own in CAFile, as production Vaults are served.
	OwnTLS bool
}

const rootToken = "root"

// StartVault starts a plain-http dev server with a TLS proxy in front.
func StartVault(dir, binDir, name string) (*VaultServer, error) {
	return StartVaultWith(dir, binDir, name, VaultOptions{})
}

// StartVaultWith starts a dev server as opts say.
func StartVaultWith(dir, binDir, name string, opts VaultOptions) (*VaultServer, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	plugins, err := filepath.EvalSymlinks(filepath.Join(binDir, "plugins"))
	if err != nil {
		return nil, err
	}
	pluginDir := filepath.Join(dir, name+"-plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return nil, err
	}
	// Vault wants the plugin files themselves in its directory, not links out of it.
	entries, err := os.ReadDir(plugins)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		target, err := filepath.EvalSymlinks(filepath.Join(plugins, e.Name()))
		if err != nil {
			return nil, err
		}
		if err := os.Link(target, filepath.Join(pluginDir, e.Name())); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("linking the %s plugin: %w", e.Name(), err)
		}
	}
	v := &VaultServer{Addr: "http://127.0.0.1:" + strconv.Itoa(port)}
	args := []string{"server", "-dev", "-dev-root-token-id=" + rootToken, "-dev-listen-address=127.0.0.1:" + strconv.Itoa(port),
		"-dev-plugin-dir=" + pluginDir, "-dev-no-store-token"}
	if opts.OwnTLS {
		certDir := filepath.Join(dir, name+"-dev-tls")
		if err := os.MkdirAll(certDir, 0o700); err != nil { // Vault writes its CA there, into an existing directory
			return nil, err
		}
		v.Addr, v.CAFile = "https://127.0.0.1:"+strconv.Itoa(port), filepath.Join(certDir, "vault-ca.pem")
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+certDir)
	}
	if v.proc, err = start(name, dir, filepath.Join(binDir, "vault"), args...); err != nil {
		return nil, err
	}
	if !opts.OwnTLS {
		if v.TLS, err = startTLS(dir, name, v.Addr); err != nil {
			return v, err
		}
	}
	err = waitFor(v.proc, 60*time.Second, func() error {
		if v.Root == nil {
			if v.Root, err = v.client(); err != nil {
				return err // the dev server writes its CA when it starts
			}
		}
		health, err := v.Root.Sys().Health()
		if err != nil {
			v.Root = nil
			return err
		}
		if !health.Initialized || health.Sealed {
			return errors.New("sys/health: not ready")
		}
		return nil
	})
	return v, err
}

// client is a root client of the server, verifying its CA with OwnTLS.
func (v *VaultServer) client() (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = v.Addr
	if v.CAFile != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: v.CAFile}); err != nil {
			return nil, err
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(rootToken)
	return c, nil
}

func (v *VaultServer) Stop() {
	if v != nil {
		if v.TLS != nil {
			v.TLS.Stop()
		}
		v.proc.stop()
	}
}

// UnsealKey is the dev server's unseal key, from its log.
//
// The dev server prints its banner after its API answers, so the log is
// read again for up to 10 s (a busy machine once took longer than a test's
// first second).
func (v *VaultServer) UnsealKey() (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(v.proc.log)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, ok := strings.CutPrefix(strings.TrimSpace(line), "Unseal Key: "); ok {
				return strings.TrimSpace(k), nil
			}
		}
		if time.Now().After(deadline) {
			return "", errors.New("no unseal key in the vault dev server's log")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// VaultProxy is a real `vault proxy` in front of a Vault server, its
// listener with require_request_header on: it answers 412 to any request
// without X-Vault-Request, as operators configure it against SSRF.
type VaultProxy struct {
	proc *process
	Addr string
}

// StartVaultProxy starts a Vault Proxy forwarding to vaultAddr.
func StartVaultProxy(dir, binDir, vaultAddr string) (*VaultProxy, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "vault-proxy.hcl")
	hcl := fmt.Sprintf(`vault { address = %q }
listener "tcp" {
  address = "127.0.0.1:%d"
  tls_disable = true
  require_request_header = true
}
api_proxy { use_auto_auth_token = false }
`, vaultAddr, port)
	if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
		return nil, err
	}
	p := &VaultProxy{Addr: "http://127.0.0.1:" + strconv.Itoa(port)}
	if p.proc, err = start("vault-proxy", dir, filepath.Join(binDir, "vault"), "proxy", "-config="+cfg); err != nil {
		return nil, err
	}
	err = waitFor(p.proc, 30*time.Second, func() error {
		resp, err := http.Get(p.Addr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPreconditionFailed {
			return fmt.Errorf("sys/health without X-Vault-Request: %d, want 412", resp.StatusCode)
		}
		return nil
	})
	return p, err
}

// Stop stops the proxy.
func (p *VaultProxy) Stop() {
	if p != nil {
		p.proc.stop()
	}
}
