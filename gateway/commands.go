package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/dedupe"
)

// loadConfig parses a command's -config flag and loads the file. On
// failure it has printed why and returns the exit code (2 for bad flags,
// 1 for a bad config).
func loadConfig(name string, args []string, stderr io.Writer) (*config.Config, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "gateway.yaml", "path of the config file")
	if err := fs.Parse(args); err != nil {
		return nil, 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, 1
	}
	return cfg, 0
}

// cmdCheck validates the config and prints it with secrets redacted.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	cfg, code := loadConfig("check", args, stderr)
	if cfg == nil {
		return code
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(stderr, "warning:", w)
	}
	out, err := cfg.Redacted()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}

// cmdMigrate applies the Postgres migrations.
func cmdMigrate(args []string, stdout, stderr io.Writer) int {
	cfg, code := loadConfig("migrate", args, stderr)
	if cfg == nil {
		return code
	}
	if cfg.Store.Kind != config.StorePostgres {
		fmt.Fprintln(stdout, "store.kind is", cfg.Store.Kind, "- the embedded store needs no migrations")
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := dedupe.Migrate(ctx, cfg.Store.URL); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, "migrations applied")
	return 0
}

// cmdReap runs one reaper pass, for operators who prefer a timer.
func cmdReap(args []string, stdout, stderr io.Writer) int {
	cfg, code := loadConfig("reap", args, stderr)
	if cfg == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	store, err := openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer store.Close()
	coord := dedupe.NewCoordinator(store, nil, coordinatorOptions(cfg))
	reclaimed, expired, err := coord.Reap(ctx)
	fmt.Fprintf(stdout, "reclaimed %d zombie tasks, deleted %d expired tasks\n", reclaimed, expired)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
