package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metricsql"
	"gopkg.in/yaml.v3"
)

// The deploy folder sits beside this package; go test runs in ./gateway.
const deployDir = "../deploy"

var (
	deployDashboardPath = filepath.Join(deployDir, "grafana", "gateway-dashboard.json")
	deployAlertsPath    = filepath.Join(deployDir, "prometheus", "alerts.yml")

	// Grafana's interval variables stand where PromQL wants a duration.
	deployIntervalVar = regexp.MustCompile(`\$\{?__(?:rate_interval|interval|range)\}?`)
	// Any other variable ($route, ${datasource}, ${route:regex}) stands inside
	// a label matcher, where a match-all regexp keeps the query valid.
	deployOtherVar = regexp.MustCompile(`\$\{[A-Za-z_]\w*(?::\w+)?\}|\$[A-Za-z_]\w*`)
	// label_values(selector, label) is Grafana's, not PromQL: only the
	// selector is a query.
	deployLabelValues   = regexp.MustCompile(`^\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*$`)
	deployQueryResult   = regexp.MustCompile(`^\s*query_result\(\s*(.+)\s*\)\s*$`)
	deployNoMetricQuery = regexp.MustCompile(`^\s*(?:label_values\(\s*\w+\s*\)|label_names\(\s*\)|metrics\(.*\))\s*$`)
)

// deployAlertRule is one rule of deploy/prometheus/alerts.yml.
type deployAlertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// deployAlertFile is the rule file layout that Prometheus reads.
type deployAlertFile struct {
	Groups []struct {
		Name  string            `yaml:"name"`
		Rules []deployAlertRule `yaml:"rules"`
	} `yaml:"groups"`
}

// deployQuery is one PromQL expression and where it was found, for messages.
type deployQuery struct {
	where string
	expr  string
}

// deployMetricNames returns every metric name referenced by the Grafana
// dashboard (panel targets and template variable queries) and by the alert
// rules. Histograms appear as their exposed series (for example
// gateway_request_duration_seconds_bucket), exactly as in /metrics output.
// A query that does not parse, or a selector without a literal metric name,
// is reported with t.Errorf.
func deployMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	names := make(map[string]bool)
	queries := append(deployDashboardQueries(t), deployAlertQueries(t)...)
	if len(queries) == 0 {
		t.Fatalf("no queries found in %s and %s", deployDashboardPath, deployAlertsPath)
	}
	for _, q := range queries {
		e, err := metricsql.Parse(deployExpandGrafanaVars(q.expr))
		if err != nil {
			t.Errorf("cannot parse %s: %q: %s", q.where, q.expr, err)
			continue
		}
		if err := deployCollectMetricNames(e, names); err != nil {
			t.Errorf("%s: %q: %s", q.where, q.expr, err)
		}
	}
	return names
}

// deployExpandGrafanaVars replaces Grafana variables with values that keep
// the expression valid PromQL.
func deployExpandGrafanaVars(expr string) string {
	expr = deployIntervalVar.ReplaceAllString(expr, "5m")
	return deployOtherVar.ReplaceAllString(expr, ".*")
}

// deployCollectMetricNames walks a parsed expression and adds the name of
// every selector it contains.
func deployCollectMetricNames(e metricsql.Expr, names map[string]bool) error {
	switch e := e.(type) {
	case *metricsql.MetricExpr:
		if len(e.LabelFilterss) == 0 {
			return fmt.Errorf("empty selector %q", e.AppendString(nil))
		}
		for _, lfs := range e.LabelFilterss {
			name := ""
			for _, lf := range lfs {
				if lf.Label == "__name__" && !lf.IsRegexp && !lf.IsNegative {
					name = lf.Value
				}
			}
			if name == "" {
				return fmt.Errorf("selector %q has no literal metric name", e.AppendString(nil))
			}
			names[name] = true
		}
	case *metricsql.RollupExpr:
		if err := deployCollectMetricNames(e.Expr, names); err != nil {
			return err
		}
		if e.At != nil {
			return deployCollectMetricNames(e.At, names)
		}
	case *metricsql.FuncExpr:
		return deployCollectArgs(e.Args, names)
	case *metricsql.AggrFuncExpr:
		return deployCollectArgs(e.Args, names)
	case *metricsql.BinaryOpExpr:
		if err := deployCollectMetricNames(e.Left, names); err != nil {
			return err
		}
		return deployCollectMetricNames(e.Right, names)
	case *metricsql.NumberExpr, *metricsql.StringExpr, *metricsql.DurationExpr:
	default:
		return fmt.Errorf("unexpected expression %T: %q", e, e.AppendString(nil))
	}
	return nil
}

func deployCollectArgs(args []metricsql.Expr, names map[string]bool) error {
	for _, a := range args {
		if err := deployCollectMetricNames(a, names); err != nil {
			return err
		}
	}
	return nil
}

// deployLoadDashboard decodes the dashboard JSON.
func deployLoadDashboard(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(deployDashboardPath)
	if err != nil {
		t.Fatalf("cannot read %q: %s", deployDashboardPath, err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("cannot decode %q: %s", deployDashboardPath, err)
	}
	return d
}

// deployDashboardPanels returns the dashboard's panels that are not rows,
// including those nested in collapsed rows.
func deployDashboardPanels(d map[string]any) []map[string]any {
	var out []map[string]any
	var walk func(v any)
	walk = func(v any) {
		list, _ := v.([]any)
		for _, p := range list {
			m, ok := p.(map[string]any)
			if !ok {
				continue
			}
			if m["type"] == "row" {
				walk(m["panels"])
				continue
			}
			out = append(out, m)
		}
	}
	walk(d["panels"])
	return out
}

// deployDashboardQueries returns every "expr" anywhere in the dashboard and
// the metric part of every query-type template variable.
func deployDashboardQueries(t *testing.T) []deployQuery {
	t.Helper()
	d := deployLoadDashboard(t)
	var out []deployQuery
	var walk func(path, title string, v any)
	walk = func(path, title string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["title"].(string); ok {
				title = s
			}
			if e, ok := v["expr"].(string); ok {
				out = append(out, deployQuery{where: fmt.Sprintf("dashboard %s (%q)", path, title), expr: e})
			}
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if path == "" && k == "templating" {
					continue // variable queries are Grafana syntax, handled below
				}
				walk(path+"."+k, title, v[k])
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), title, x)
			}
		}
	}
	walk("", "", d)

	templating, _ := d["templating"].(map[string]any)
	vars, _ := templating["list"].([]any)
	for _, v := range vars {
		m, _ := v.(map[string]any)
		if m["type"] != "query" {
			continue
		}
		where := fmt.Sprintf("dashboard variable %v", m["name"])
		q, _ := m["query"].(string)
		if qm, ok := m["query"].(map[string]any); ok {
			q, _ = qm["query"].(string)
		}
		if sm := deployLabelValues.FindStringSubmatch(q); sm != nil {
			out = append(out, deployQuery{where: where, expr: sm[1]})
			continue
		}
		if sm := deployQueryResult.FindStringSubmatch(q); sm != nil {
			out = append(out, deployQuery{where: where, expr: sm[1]})
			continue
		}
		// label_values(label), label_names() and metrics(...) name no
		// metric to check; anything else is not a Prometheus variable query.
		if !deployNoMetricQuery.MatchString(q) {
			t.Errorf("%s: unsupported variable query %q", where, q)
		}
	}
	return out
}

// deployLoadAlertRules decodes the alert rule file with its groups.
func deployLoadAlertRules(t *testing.T) deployAlertFile {
	t.Helper()
	b, err := os.ReadFile(deployAlertsPath)
	if err != nil {
		t.Fatalf("cannot read %q: %s", deployAlertsPath, err)
	}
	var f deployAlertFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("cannot decode %q: %s", deployAlertsPath, err)
	}
	return f
}

func deployAlertQueries(t *testing.T) []deployQuery {
	t.Helper()
	var out []deployQuery
	for _, g := range deployLoadAlertRules(t).Groups {
		for _, r := range g.Rules {
			out = append(out, deployQuery{where: "alert " + r.Alert + r.Record, expr: r.Expr})
		}
	}
	return out
}

func TestDeployFilesParse(t *testing.T) {
	names := deployMetricNames(t)
	if len(names) == 0 {
		t.Fatalf("no metric names found")
	}
	for name := range names {
		// gen_ai_: the OpenTelemetry GenAI names (upstreams/genai.go).
		if !strings.HasPrefix(name, "gateway_") && !strings.HasPrefix(name, "gen_ai_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %q is not exported by the gateway (want prefix gateway_, gen_ai_, go_ or process_)", name)
		}
	}

	// Every metric of the contract (DESIGN.md section 6) has a panel or alert,
	// so a renamed metric shows up here rather than as an empty panel.
	for _, want := range []string{
		"gateway_requests_total",
		"gateway_request_duration_seconds_bucket",
		"gateway_inflight_requests",
		"gateway_dedupe_total",
		"gateway_upstream_attempts_total",
		"gateway_upstream_duration_seconds_bucket",
		"gateway_upstream_ttfb_seconds_bucket",
		"gateway_fallbacks_total",
		"gateway_tokens_total",
		"gateway_tokens_saved_total",
		"gateway_zombies_reclaimed_total",
		"gateway_store_errors_total",
		"gateway_lock_degraded_total",
		"gateway_tasks_expired_total",
		"gateway_attempts_abandoned_total",
		"gateway_store_table_bytes",
		"gateway_store_dead_tuples",
		"gateway_store_oldest_processing_seconds",
		"gateway_cost_usd_total",
		"gateway_cost_saved_usd_total",
		"gateway_config_reloads_total",
		"gateway_breaker_state",
		"gateway_breaker_transitions_total",
		"gateway_retries_total",
		"gateway_attempt_budget_exhausted_total",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !names[want] {
			t.Errorf("metric %q is used by no panel and no alert", want)
		}
	}

	d := deployLoadDashboard(t)
	if d["uid"] != "idem-gateway" {
		t.Errorf("dashboard uid = %v, want idem-gateway", d["uid"])
	}
	panels := deployDashboardPanels(d)
	if len(panels) < 15 {
		t.Errorf("dashboard has %d panels, want at least 15", len(panels))
	}
	ids := make(map[float64]bool)
	for _, p := range panels {
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", p["title"])
		}
		id, _ := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel %q reuses id %v", p["title"], id)
		}
		ids[id] = true
	}

	alerts := make(map[string]bool)
	for _, g := range deployLoadAlertRules(t).Groups {
		if g.Name != "idempotent-gateway" {
			t.Errorf("alert group %q, want idempotent-gateway", g.Name)
		}
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.For == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %q needs for, labels.severity, annotations.summary and annotations.description", r.Alert)
			}
		}
	}
	for _, want := range []string{"GatewayHigh5xxRate", "IdempotencyConflictSpike", "ZombieTasksReclaimed",
		"FallbackRateHigh", "UpstreamProviderFailing", "StoreErrors", "LockDegraded",
		"StoreDeadTuplesGrowing", "ProcessingTaskStuck", "UpstreamTargetOpen"} {
		if !alerts[want] {
			t.Errorf("alert %q is missing from %s", want, deployAlertsPath)
		}
	}

	t.Run("promtool", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("promtool is not installed (Debian package prometheus): %s", err)
			}
			t.Skipf("promtool is not installed (Debian package prometheus): %s", err)
		}
		dir := filepath.Join(deployDir, "prometheus")
		for _, args := range [][]string{
			{"check", "rules", "alerts.yml"},
			{"check", "config", "prometheus.yml"},
			{"test", "rules", "alerts_test.yml"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			cmd := exec.CommandContext(ctx, promtool, args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				t.Errorf("promtool %s in %s: %s\n%s", strings.Join(args, " "), dir, err, out)
			}
		}
	})
}
