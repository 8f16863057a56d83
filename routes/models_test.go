package routes_test

import (
	"encoding/json"
	"reflect"
	"testing"
)

// GET /v1/models lists the configured route models, sorted, in OpenAI's
// list shape; the "*" route is not a model.
func TestModelsList(t *testing.T) {
	f := func(routes string, want []string) {
		t.Helper()
		g := startGW(t, gwOptions{yaml: routes})
		a := g.do("GET", "/v1/models", "")
		wantStatus(t, a, 200)
		wantHeader(t, a, "Content-Type", "application/json")
		var list struct {
			Object string `json:"object"`
			Data   []map[string]any
		}
		if err := json.Unmarshal(a.body, &list); err != nil || list.Object != "list" || list.Data == nil {
			t.Fatalf("models body %s (%v)", a.body, err)
		}
		var ids []string
		for _, m := range list.Data {
			want := map[string]any{"id": m["id"], "object": "model", "created": float64(0), "owned_by": "gateway"}
			if !reflect.DeepEqual(m, want) {
				t.Fatalf("model entry %v, want %v", m, want)
			}
			ids = append(ids, m["id"].(string))
		}
		if !reflect.DeepEqual(ids, want) {
			t.Fatalf("model ids %v, want %v", ids, want)
		}
		if g.fake.Calls() != 0 {
			t.Fatalf("the model list called the upstream")
		}
	}
	f(`routes:
  - model: zeta
    targets: [{provider: fake}]
  - model: "*"
    targets: [{provider: fake}]
  - model: alpha
    targets: [{provider: fake, model: upstream-alpha}]
`, []string{"alpha", "zeta"})
	f("", nil) // only "*": an empty list, "data":[] rather than null
}

// The model list needs a client key.
func TestModelsNeedsKey(t *testing.T) {
	g := startGW(t, gwOptions{})
	wantError(t, g.do("GET", "/v1/models", "", "Authorization", ""), 401, "authentication_error", "invalid_api_key", "")
}
