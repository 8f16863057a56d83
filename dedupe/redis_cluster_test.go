package dedupe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterNodes is the number of masters of the throwaway cluster: Redis
// Cluster needs at least three.
const clusterNodes = 3

// clusterBusOffset is where Redis Cluster puts a node's bus port
// (client port + 10000), so both ports must be free.
const clusterBusOffset = 10000

// startRedisCluster starts a throwaway Redis Cluster of clusterNodes
// masters (no replicas) on free loopback ports, from the redis-server and
// redis-cli binaries on PATH, and returns the nodes' addresses once every
// node reports cluster_state:ok. The processes are killed and their
// directory removed when the test ends.
func startRedisCluster(t *testing.T) []string {
	t.Helper()
	server, errServer := exec.LookPath("redis-server")
	cli, errCLI := exec.LookPath("redis-cli")
	if err := errors.Join(errServer, errCLI); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server and redis-cli must be on PATH in CI: %v", err)
		}
		t.Skipf("redis-server or redis-cli not on PATH; skipping Redis Cluster test: %v", err)
	}
	// Registered first, so removed after the processes are killed.
	dir := t.TempDir()
	ports := freeClusterPorts(t)

	var procs []*exec.Cmd
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	})
	addrs := make([]string, 0, len(ports))
	for _, port := range ports {
		p := strconv.Itoa(port)
		cmd := exec.Command(server,
			"--port", p,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes-"+p+".conf"),
			"--dir", dir,
			"--save", "",
			"--appendonly", "no",
			"--bind", "127.0.0.1",
			"--daemonize", "no",
			"--logfile", filepath.Join(dir, "redis-"+p+".log"),
		)
		// If the test binary dies (a suite timeout), the node dies with it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("cannot start %q: %v", server, err)
		}
		procs = append(procs, cmd)
		addrs = append(addrs, "127.0.0.1:"+p)
	}
	// The logs explain a cluster that never became ready.
	fail := func(format string, args ...any) {
		t.Helper()
		for _, port := range ports {
			b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("redis-%d.log", port)))
			t.Logf("redis-%d.log:\n%s", port, b)
		}
		t.Fatalf(format, args...)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, addr := range addrs {
		if err := waitNode(ctx, addr, func(c *redis.Client) error { return c.Ping(ctx).Err() }); err != nil {
			fail("cannot ping %q: %v", addr, err)
		}
	}
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		fail("cannot create the cluster with %q: %v\n%s", cli, err, out)
	}
	for _, addr := range addrs {
		err := waitNode(ctx, addr, func(c *redis.Client) error {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return errors.New("cluster_state is not ok yet")
			}
			return nil
		})
		if err != nil {
			fail("cannot see cluster_state:ok on %q: %v", addr, err)
		}
	}
	return addrs
}

// freeClusterPorts returns clusterNodes loopback ports that are free for
// a node, together with their bus ports. Listeners stay open until all are
// chosen so that no port is picked twice; another process may still take
// one before redis-server binds it, which is unlikely enough for a test.
func freeClusterPorts(t *testing.T) []int {
	t.Helper()
	var (
		ports []int
		lns   []net.Listener
	)
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for attempt := 0; len(ports) < clusterNodes; attempt++ {
		if attempt > 100 {
			t.Fatalf("cannot find %d free port pairs on 127.0.0.1", clusterNodes)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("cannot listen on 127.0.0.1: %v", err)
		}
		lns = append(lns, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		if port+clusterBusOffset > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+clusterBusOffset))
		if err != nil {
			continue
		}
		lns = append(lns, bus)
		ports = append(ports, port)
	}
	return ports
}

// waitNode retries check against a plain client of addr until it succeeds
// or ctx ends.
func waitNode(ctx context.Context, addr string, check func(*redis.Client) error) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	for {
		err := check(c)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// clusterClientForTest returns a cluster client of addrs built the way the
// gateway builds its client (a UniversalClient with several addresses),
// closed when the test ends.
func clusterClientForTest(t *testing.T, addrs []string, name string) *redis.ClusterClient {
	t.Helper()
	uc := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, ClientName: name})
	client, ok := uc.(*redis.ClusterClient)
	if !ok {
		_ = uc.Close()
		t.Fatalf("NewUniversalClient with %d addrs returned %T; want *redis.ClusterClient", len(addrs), uc)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// nodeClients returns a plain (non-cluster) client per node address,
// closed when the test ends.
func nodeClients(t *testing.T, addrs []string) map[string]*redis.Client {
	t.Helper()
	m := map[string]*redis.Client{}
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = c.Close() })
		m[addr] = c
	}
	return m
}

// masterOf returns the address of the master that serves key.
func masterOf(t *testing.T, client *redis.ClusterClient, key string) string {
	t.Helper()
	c, err := client.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatalf("cannot find the master of %q: %v", key, err)
	}
	return c.Options().Addr
}

// namesPerNode returns, for every node, one name whose key (keyOf(name))
// that node serves.
func namesPerNode(t *testing.T, client *redis.ClusterClient, addrs []string, keyOf func(string) string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for i := 0; len(m) < len(addrs); i++ {
		if i > 1000 {
			t.Fatalf("names only reach nodes %v of %v", m, addrs)
		}
		name := fmt.Sprintf("n%d", i)
		if addr := masterOf(t, client, keyOf(name)); m[addr] == "" {
			m[addr] = name
		}
	}
	return m
}

// TestRedisCluster runs the backend behaviour table against a real
// three-master Redis Cluster through a go-redis ClusterClient, as DESIGN.md
// section 3 promises, and checks what only a cluster can break: keys of
// different names on different nodes, and wake-ups published on a node
// other than the one holding the shared pattern subscription.
func TestRedisCluster(t *testing.T) {
	addrs := startRedisCluster(t)

	t.Run("Behaviour", func(t *testing.T) {
		client := clusterClientForTest(t, addrs, "gwtest-behaviour")
		r := NewRedis(client, "gw:")
		t.Cleanup(func() { _ = r.Close() })
		testLockBackend(t, r)
	})
	t.Run("KeysSpreadOverNodes", func(t *testing.T) { testClusterKeysSpread(t, addrs) })
	t.Run("WakeAcrossNodes", func(t *testing.T) { testClusterWakeAcrossNodes(t, addrs) })
}

// testClusterKeysSpread checks that names are not pinned to one slot (the
// prefix carries no hash tag) and that locks and live streams work on
// every node, stored on the node the cluster assigns.
func testClusterKeysSpread(t *testing.T, addrs []string) {
	ctx := context.Background()
	client := clusterClientForTest(t, addrs, "gwtest-spread")
	nodes := nodeClients(t, addrs)
	const prefix = "spread:"
	r := NewRedis(client, prefix)
	t.Cleanup(func() { _ = r.Close() })

	// A fixed set of names must use several slots and every node: a hash
	// tag in the key layout would put them all on one.
	slots := map[int64]bool{}
	used := map[string]bool{}
	for i := range 64 {
		key := fmt.Sprintf("%slock:name-%d", prefix, i)
		slot, err := client.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %q: %v", key, err)
		}
		slots[slot] = true
		used[masterOf(t, client, key)] = true
	}
	if len(slots) < 32 || len(used) != len(addrs) {
		t.Fatalf("64 names use %d slots on %d nodes; want many slots on all %d nodes", len(slots), len(used), len(addrs))
	}

	lockNames := namesPerNode(t, client, addrs, func(n string) string { return prefix + "lock:" + n })
	for addr, name := range lockNames {
		key := prefix + "lock:" + name
		l, ok, err := r.TryAcquire(ctx, name, time.Minute)
		if err != nil || !ok {
			t.Fatalf("TryAcquire %q (on %s) = %v, %v; want true, nil", name, addr, ok, err)
		}
		// The key lives on its master; every other node redirects.
		for other, c := range nodes {
			token, err := c.Get(ctx, key).Result()
			if other == addr {
				if err != nil || len(token) != 32 {
					t.Fatalf("GET %q on %s = %q, %v; want the 32-digit token", key, addr, token, err)
				}
			} else if err == nil || !strings.HasPrefix(err.Error(), "MOVED ") {
				t.Fatalf("GET %q on %s (not its master) = %q, %v; want a MOVED error", key, other, token, err)
			}
		}
		if _, ok, err := r.TryAcquire(ctx, name, time.Minute); err != nil || ok {
			t.Fatalf("second TryAcquire %q = %v, %v; want false, nil", name, ok, err)
		}
		// The scripts address the key's node too.
		if ok, err := l.Extend(ctx, 2*time.Minute); err != nil || !ok {
			t.Fatalf("Extend %q = %v, %v; want true, nil", name, ok, err)
		}
		if ttl := nodes[addr].PTTL(ctx, key).Val(); ttl <= time.Minute {
			t.Fatalf("PTTL of %q after Extend = %v; want > 1m", key, ttl)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release %q: %v", name, err)
		}
		if n := nodes[addr].Exists(ctx, key).Val(); n != 0 {
			t.Fatalf("lock %q still on %s after Release", key, addr)
		}
	}

	liveNames := namesPerNode(t, client, addrs, func(n string) string { return prefix + "live:" + n })
	for addr, name := range liveNames {
		want := []LiveEvent{dataEvent(0), dataEvent(1), {End: true, Err: "boom"}}
		appendAll(t, r, name, want)
		if n := nodes[addr].XLen(ctx, prefix+"live:"+name).Val(); n != int64(len(want)) {
			t.Fatalf("XLEN of %q on %s = %d; want %d", name, addr, n, len(want))
		}
		got, err := followAll(t, r, ctx, name, 0, waitLong)
		if err != nil || len(got) != len(want) || !got[2].End || got[2].Err != "boom" {
			t.Fatalf("follow %q (on %s) = %+v, %v; want %+v", name, addr, got, err, want)
		}
		if err := r.Expire(ctx, name, 0); err != nil {
			t.Fatalf("Expire %q: %v", name, err)
		}
		if n := nodes[addr].Exists(ctx, prefix+"live:"+name).Val(); n != 0 {
			t.Fatalf("stream %q still on %s after Expire(0)", name, addr)
		}
	}
}

// testClusterWakeAcrossNodes checks that the one pattern subscription of
// a backend, held on one node, receives wake-ups for names served by any
// node, published on any node: classic Pub/Sub is broadcast over the
// cluster bus, whatever node the publisher talks to.
func testClusterWakeAcrossNodes(t *testing.T, addrs []string) {
	ctx := context.Background()
	const (
		prefix     = "wake:"
		clientName = "gwtest-wake"
	)
	client := clusterClientForTest(t, addrs, clientName)
	nodes := nodeClients(t, addrs)
	r := NewRedis(client, prefix)
	t.Cleanup(func() { _ = r.Close() })

	// Opens the shared subscription; then find its node by the client
	// name on its connection.
	_, cancelFirst, err := r.Subscribe(ctx, "first")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer cancelFirst()
	var subNodes []string
	for addr, c := range nodes {
		list, err := c.ClientList(ctx).Result()
		if err != nil {
			t.Fatalf("CLIENT LIST on %s: %v", addr, err)
		}
		for line := range strings.SplitSeq(list, "\n") {
			fields := strings.Fields(line)
			if slices.Contains(fields, "name="+clientName) && slices.Contains(fields, "psub=1") {
				subNodes = append(subNodes, addr)
			}
		}
	}
	if len(subNodes) != 1 {
		t.Fatalf("pattern subscription connections on nodes %v; want exactly one", subNodes)
	}
	subNode := subNodes[0]
	t.Logf("shared subscription on %s", subNode)

	names := namesPerNode(t, client, addrs, func(n string) string { return prefix + "done:" + n })
	others := 0
	for addr, name := range names {
		if addr != subNode {
			others++
		}
		ch, cancel, err := r.Subscribe(ctx, name)
		if err != nil {
			t.Fatalf("Subscribe %q: %v", name, err)
		}
		defer cancel()
		wait := func(via string) {
			t.Helper()
			select {
			case <-ch:
			case <-time.After(waitLong):
				t.Fatalf("waiter of %q (served by %s, subscription on %s) not woken by a publish via %s", name, addr, subNode, via)
			}
		}
		// A publish on each node in turn, from a plain client.
		for pubAddr, c := range nodes {
			if err := c.Publish(ctx, prefix+"done:"+name, "1").Err(); err != nil {
				t.Fatalf("PUBLISH on %s: %v", pubAddr, err)
			}
			wait(pubAddr)
		}
		// And through the backend's own cluster client.
		if err := r.Publish(ctx, name); err != nil {
			t.Fatalf("Publish %q: %v", name, err)
		}
		wait("Redis.Publish")
	}
	if others < len(addrs)-1 {
		t.Fatalf("only %d names served by nodes other than the subscription's; want %d", others, len(addrs)-1)
	}
}
