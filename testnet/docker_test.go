//go:build e2e

package testnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credence-ledger/credence/internal/testport"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// dockerNet is the compose testnet of testnet/docker-compose.yml, brought up
// for one test under its own project name.
type dockerNet struct {
	*network
	project string
	env     []string
}

func run(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newDockerNet(t *testing.T) *dockerNet {
	t.Helper()
	for _, tool := range []string{"docker", "docker-compose"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s (a Docker engine with Compose); it is not installed", tool)
		}
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		t.Fatalf("this test needs a running Docker engine: %v\n%s", err, out)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "credenced")
	cmd := exec.Command("go", "build", "-tags", "badgerdb", "-trimpath", "-o", bin, "../cmd/credenced")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	homes := filepath.Join(dir, "homes")
	run(t, nil, bin, "testnet", "--validators", "4", "--starting-ip", "172.29.0.10",
		"--chain-id", "e2e-docker", "--output", homes)
	project := fmt.Sprintf("credence-e2e-%d", os.Getpid())
	image := project + ":test"
	dockerfile, err := filepath.Abs("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	run(t, nil, "docker", "build", "-q", "-t", image, "-f", dockerfile, filepath.Dir(bin))
	base := testport.Range(t, 40)
	env := []string{"COMPOSE_PROJECT_NAME=" + project, "CREDENCE_IMAGE=" + image, "CREDENCE_HOMES=" + homes}
	for i := 0; i < 4; i++ {
		env = append(env, fmt.Sprintf("NODE%d_RPC=%d", i, base+10*i+1), fmt.Sprintf("NODE%d_GRPC=%d", i, base+10*i+2),
			fmt.Sprintf("NODE%d_HTTP=%d", i, base+10*i+5))
	}
	d := &dockerNet{project: project, env: env}
	t.Cleanup(func() {
		if t.Failed() {
			for i := 0; i < 4; i++ {
				out, _ := exec.Command("docker", "logs", "--tail", "20", fmt.Sprintf("%s-node%d", project, i)).CombinedOutput()
				t.Logf("%s-node%d log tail:\n%s", project, i, out)
			}
		}
		down := exec.Command("docker-compose", "-f", "docker-compose.yml", "down", "-v", "--timeout", "5")
		down.Env = append(os.Environ(), env...)
		if out, err := down.CombinedOutput(); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
		exec.Command("docker", "rmi", "-f", image).Run()
	})
	run(t, env, "docker-compose", "-f", "docker-compose.yml", "up", "-d")

	g, err := os.ReadFile(filepath.Join(homes, "node0", "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := proof.TrustRootFromGenesis(g)
	if err != nil {
		t.Fatal(err)
	}
	d.network = &network{t: t, trust: trust}
	for i := 0; i < 4; i++ {
		tok, err := os.ReadFile(filepath.Join(homes, fmt.Sprintf("node%d", i), "config", fmt.Sprintf("api-token-member-%d-registrar", i)))
		if err != nil {
			t.Fatal(err)
		}
		nd := &node{i: i, token: strings.TrimSpace(string(tok)),
			grpc: fmt.Sprintf("127.0.0.1:%d", base+10*i+2), rpc: fmt.Sprintf("127.0.0.1:%d", base+10*i+1)}
		conn, err := grpc.NewClient(nd.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		nd.client = pb.NewCredenceClient(conn)
		d.nodes = append(d.nodes, nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, nd := range d.nodes {
		d.waitHeight(ctx, nd, 1)
	}
	t.Logf("4 containers up on a private network (project %s)", project)
	return d
}

func (d *dockerNet) netName() string { return d.project + "_credence" }

func (d *dockerNet) disconnect(i int) {
	run(d.t, nil, "docker", "network", "disconnect", d.netName(), fmt.Sprintf("%s-node%d", d.project, i))
}

func (d *dockerNet) connect(i int) {
	run(d.t, nil, "docker", "network", "connect", "--ip", fmt.Sprintf("172.29.0.%d", 10+i),
		d.netName(), fmt.Sprintf("%s-node%d", d.project, i))
}

// heldFor checks that nd's height stays within one block of where it is
// for the whole window: a quorum-less network makes no progress.
func (d *dockerNet) heldFor(ctx context.Context, nd *node, window time.Duration) int64 {
	d.t.Helper()
	start := d.height(ctx, nd)
	end := time.Now().Add(window)
	for time.Now().Before(end) {
		if h := d.height(ctx, nd); h > start+1 {
			d.t.Fatalf("node%d went from %d to %d without a quorum", nd.i, start, h)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return start
}

// TestDockerPartitions: a 2|2 partition stops the chain and healing it
// resumes it; a 1|3 partition leaves the 3 going and the 1 catches up
// after healing. Anchoring continues throughout where a quorum exists.
func TestDockerPartitions(t *testing.T) {
	d := newDockerNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	a := d.nodes[0]
	l := startLoad(ctx, a, 1)
	d.waitHeight(ctx, a, 3)

	d.disconnect(2)
	d.disconnect(3)
	held := d.heldFor(ctx, a, 6*time.Second)
	t.Logf("partition 2|2: node0 held at height %d for 6s", held)
	d.connect(2)
	d.connect(3)
	resumed := d.waitHeight(ctx, a, held+3)
	t.Logf("healed: blocks resumed to height %d", resumed)

	d.disconnect(3)
	h := d.waitHeight(ctx, a, resumed+3)
	t.Logf("partition 1|3: the 3 went on to height %d", h)
	d.connect(3)
	caught := d.waitHeight(ctx, d.nodes[3], h)
	t.Logf("healed: node3 caught up to %d", caught)

	acked := l.finish()
	for _, nd := range d.nodes {
		d.waitHeight(ctx, nd, caught)
	}
	d.checkNoFork(ctx, caught)
	d.checkAnchoredOnce(ctx, d.nodes[3], "member-0-registrar", acked)
}
