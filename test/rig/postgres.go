package rig

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// Postgres is a real PostgreSQL server on 127.0.0.1, for Vault's database
// secrets engine. Host connections need a password (scram-sha-256), so a
// credential that works is a credential Vault really created.
type Postgres struct {
	proc *process
	Port int
	bin  string
	data string
}

// PostgresSuperPassword is the password of the postgres superuser Vault uses.
const PostgresSuperPassword = "vcp-postgres-root"

// StartPostgres initializes a cluster in a fresh directory and starts it.
// PostgreSQL refuses to run as root, so as root it runs as the postgres user.
func StartPostgres(dir string) (*Postgres, error) {
	bin, err := filepath.EvalSymlinks(filepath.Join(BinDir(), "postgresql"))
	if err != nil {
		return nil, fmt.Errorf("postgresql binaries: %w", err)
	}
	data, err := os.MkdirTemp(tmpfsDir(), "vcp-pg-")
	if err != nil {
		return nil, err
	}
	pwfile := filepath.Join(data, "pw")
	if err := os.WriteFile(pwfile, []byte(PostgresSuperPassword), 0o600); err != nil {
		return nil, err
	}
	asUser, err := postgresRunner(data)
	if err != nil {
		return nil, err
	}
	pgdata := filepath.Join(data, "pgdata")
	initdb := asUser(filepath.Join(bin, "initdb"), "-D", pgdata, "-U", "postgres", "--pwfile="+pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p := &Postgres{Port: port, bin: bin, data: data}
	cmd := asUser(filepath.Join(bin, "postgres"), "-D", pgdata, "-p", strconv.Itoa(port), "-k", data,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=300")
	if p.proc, err = startCmd("postgres", dir, cmd); err != nil {
		return nil, err
	}
	go func() { <-p.proc.done; os.RemoveAll(data) }()
	err = waitFor(p.proc, 60*time.Second, func() error { return p.Login("postgres", PostgresSuperPassword) })
	return p, err
}

// Login connects over TCP with a password, as an application would.
func (p *Postgres) Login(username, password string) error {
	cmd := exec.Command(filepath.Join(p.bin, "psql"), "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", username,
		"-d", "postgres", "-tAc", "select 1")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=5")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("psql as %s: %w: %s", username, err, out)
	}
	return nil
}

// ConnectionURL is the template Vault's database engine connects with.
func (p *Postgres) ConnectionURL() string {
	return fmt.Sprintf("postgresql://{{username}}:{{password}}@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
}

// Stop stops the server.
func (p *Postgres) Stop() {
	if p != nil {
		p.proc.stop()
	}
}

// postgresRunner returns how to run PostgreSQL's programs: directly, or as
// the postgres user when this is root (dir is handed to that user).
func postgresRunner(dir string) (func(name string, args ...string) *exec.Cmd, error) {
	if os.Geteuid() != 0 {
		return exec.Command, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user (Debian's postgresql package): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	if err := os.Chown(filepath.Join(dir, "pw"), uid, gid); err != nil {
		return nil, err
	}
	return func(name string, args ...string) *exec.Cmd {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}, nil
}
