package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

type options struct {
	socket        string
	pid           int
	reads         int
	runs          int
	block         int
	burst         int
	identities    []int
	rotationPods  int
	rotationPolls int
	restartPods   int
	compression   float64
	providerArgs  []string
	providerEnv   []string
	keep          bool
	// vaultTLS serves Vault on its own TLS listener (the default, as
	// production Vaults are); false: plain http.
	vaultTLS   bool
	profile    string
	profileFor time.Duration
	// scenarios are the rows -scenarios chose; nil: all of them.
	scenarios map[string]bool
}

// bench is one run: the rig, the provider under test and the table.
type bench struct {
	o      options
	r      *rig.Rig
	dir    string
	client v1alpha1.CSIDriverProviderClient
	pid    int
	rows   []row
	// pprofAddr serves the provider's profiles when -profile is set.
	pprofAddr string
}

type row struct{ scenario, figure, value, target string }

func (b *bench) add(scenario, figure, value, target string) {
	b.rows = append(b.rows, row{scenario, figure, value, target})
	fmt.Fprintf(os.Stderr, "  %-34s %-40s %s\n", scenario, figure, value)
}

const (
	benchSecrets = 50
	benchDBRole  = "bench"
	nodeName     = "bench-node"
)

func run(ctx context.Context, o options) error {
	if missing := rig.Missing(); missing != "" {
		return fmt.Errorf("missing %s: run make test-deps", missing)
	}
	dir, err := os.MkdirTemp("", "vcp-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Fprintf(os.Stderr, "bench: kept %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	start := time.Now()
	r, err := rig.StartWith(ctx, dir, rig.VaultOptions{OwnTLS: o.vaultTLS})
	defer r.Stop()
	if err != nil {
		return err
	}
	b := &bench{o: o, r: r, dir: dir}
	if err := b.seed(); err != nil {
		return fmt.Errorf("seeding vault: %w", err)
	}
	// The class the requests name, so that the provider finds their Vault
	// address and CA in the class itself (no pod override).
	if err := r.CreateClass(ctx, "test-class", b.classParams("")); err != nil {
		return fmt.Errorf("creating the class: %w", err)
	}
	stopProvider, err := b.startProvider(ctx)
	if err != nil {
		return err
	}
	defer stopProvider()
	fmt.Fprintf(os.Stderr, "bench: components and provider ready in %s\n", time.Since(start).Round(time.Millisecond))

	for _, s := range steps {
		if s.key != "" && o.scenarios != nil && !o.scenarios[s.key] {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s\n", s.name)
		if err := s.fn(b, ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	b.print()
	return nil
}

// steps are the parts of a run in order; key names a part for -scenarios
// (empty: it always runs).
var steps = []struct {
	key, name string
	fn        func(*bench, context.Context) error
}{
	{"", "rss at rest", (*bench).rssAtRest},
	{"warm", "warm latency and floor", (*bench).warmLatency},
	{"identities", "burst and identities", (*bench).burstAndIdentities},
	{"rotation", "rotation", (*bench).rotation},
	{"uncached", "rotation without caching", (*bench).rotationUncached},
	{"restart", "restart", (*bench).restart},
}

// scenarioNames are the keys -scenarios accepts, in the order they run.
func scenarioNames() []string {
	var names []string
	for _, s := range steps {
		if s.key != "" {
			names = append(names, s.key)
		}
	}
	return names
}

// seed writes the KV secrets and the database role the scenarios read.
func (b *bench) seed() error {
	v := b.r.Vault.Root.Logical()
	for i := range benchSecrets {
		if _, err := v.Write(fmt.Sprintf("secret/data/bench/s%02d", i), map[string]any{"data": map[string]any{"value": fmt.Sprintf("value-%02d-%s", i, strings.Repeat("x", 64))}}); err != nil {
			return err
		}
	}
	// 30s leases renewable to 10 minutes: at the default compression 30s of
	// lease are 30 minutes of simulated time, two rotation polls a minute.
	_, err := v.Write("database/roles/"+benchDBRole, map[string]any{
		"db_name":             "pg",
		"creation_statements": []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`},
		"default_ttl":         "30s",
		"max_ttl":             "10m",
	})
	return err
}

// startProvider builds and starts this repository's provider, or connects
// to -socket.
func (b *bench) startProvider(ctx context.Context) (stop func(), err error) {
	socket := b.o.socket
	stop = func() {}
	if socket == "" {
		bin, err := b.buildProvider(ctx)
		if err != nil {
			return stop, err
		}
		socket = filepath.Join(b.dir, "vault.sock")
		env := b.o.providerEnv
		if b.o.profile != "" {
			port, err := rig.FreePort()
			if err != nil {
				return stop, err
			}
			b.pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
			env = append(slices.Clip(env), "VCP_PPROF_ADDR="+b.pprofAddr)
		}
		// Room for every identity the bench makes, so that none is evicted.
		args := append([]string{fmt.Sprintf("-cache-size=%d", b.o.identities[len(b.o.identities)-1]+1000)}, b.o.providerArgs...)
		cmd, err := startProviderProcess(bin, b.dir, "provider", socket, b.r, args, env...)
		if err != nil {
			return stop, err
		}
		b.pid = cmd.Process.Pid
		stop = func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
	} else {
		b.pid = b.o.pid
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return stop, err
	}
	b.client = v1alpha1.NewCSIDriverProviderClient(conn)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := b.client.Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
		if err == nil {
			return stop, nil
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(filepath.Join(b.dir, "provider.log"))
			return stop, fmt.Errorf("provider at %s does not answer: %w\n%s", socket, err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// buildProvider builds the provider as make build does (static, stripped,
// no file paths), so that its size and memory are what users run; with
// -profile, with the pprof tag as well.
func (b *bench) buildProvider(ctx context.Context) (string, error) {
	bin := b.binary()
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", bin}
	if b.o.profile != "" {
		args = append(args, "-tags=pprof")
	}
	build := exec.CommandContext(ctx, "go", append(args, "./cmd/vault-csi-provider")...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the provider: %w: %s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		return "", err
	}
	how := "static, -trimpath -s -w"
	if b.o.profile != "" {
		how += ", with the pprof tag of -profile"
	}
	b.add("binary", "size ("+how+")", fmt.Sprintf("%.1f MiB", float64(st.Size())/(1<<20)), "")
	return bin, nil
}

// startProviderProcess runs the provider binary with the flags a DaemonSet
// would pass for this rig.
func startProviderProcess(bin, dir, name, socket string, r *rig.Rig, extra []string, env ...string) (*exec.Cmd, error) {
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	args := []string{
		"-endpoint=" + socket, "-health-addr=", "-metrics-addr=",
		"-vault-addr=" + r.Vault.Addr, "-kubeconfig=" + r.Kube.AdminKubeconfig, "-node-name=" + nodeName,
	}
	if r.Vault.CAFile != "" { // as an operator sets it: the chart's vault.caCert
		args = append(args, "-vault-tls-ca-cert="+r.Vault.CAFile)
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	// As the chart runs it; -provider-env may set another GOMAXPROCS (the
	// last value of a name counts).
	cmd.Env = append([]string{"POD_NAMESPACE=" + rig.ProviderNamespace, "GOMAXPROCS=" + chartGOMAXPROCS}, env...)
	// Its output goes through a pipe, read here into the file, as a
	// container runtime reads a pod's.
	out := struct{ io.Writer }{logFile}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil // its callers Wait; the log file closes with the bench
}

func (b *bench) print() {
	host, _ := os.Hostname()
	fmt.Printf("\nMachine: %s, %d cores (%s), %s, %s\n", cpuModel(), runtime.NumCPU(), host, runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("Vault: %s\n", b.vaultListener())
	fmt.Printf("Provider: default flags, GOMAXPROCS=%s as the chart sets it%s\n\n", chartGOMAXPROCS, b.extra())
	fmt.Println("| scenario | figure | value | target |")
	fmt.Println("|---|---|---|---|")
	for _, r := range b.rows {
		fmt.Printf("| %s | %s | %s | %s |\n", r.scenario, r.figure, r.value, r.target)
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if i := strings.Index(line, ":"); i >= 0 {
				return strings.TrimSpace(line[i+1:])
			}
		}
	}
	return "unknown CPU"
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

// vaultListener says how the bench's Vault was served.
func (b *bench) vaultListener() string {
	if b.r.Vault.CAFile != "" {
		return "its own TLS listener (-dev-tls), the provider and the floor verifying its CA"
	}
	return "plain http (-vault-tls=false)"
}

// chartGOMAXPROCS is the chart's goRuntime.gomaxprocs default.
const chartGOMAXPROCS = "1"

// extra names the settings -provider-env and -provider-arg added.
func (b *bench) extra() string {
	if len(b.o.providerEnv)+len(b.o.providerArgs) == 0 {
		return ""
	}
	return ", then " + strings.Join(append(slices.Clone(b.o.providerEnv), b.o.providerArgs...), " ")
}
