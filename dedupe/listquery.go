package dedupe

import (
	"fmt"
	"strconv"
	"time"
)

// ListParamError names the list parameter that is wrong and why; the
// admin API answers it with a 400 naming the parameter.
type ListParamError struct {
	Param  string
	Reason string
}

func (e *ListParamError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Param, e.Reason) }

// ListParams are the parameters of GET /admin/tasks (and of the ledger
// page's filter form).
var ListParams = []string{"tenant", "status", "route", "since", "until", "limit", "cursor"}

// maxListParamLen caps a text parameter: tenants and routes come from the
// config, and longer text can only be a mistake or an attack.
const maxListParamLen = 512

// ParseListQuery reads a ListQuery from the parameters that get returns
// ("" when absent). since and until are RFC 3339 times.
func ParseListQuery(get func(name string) string) (ListQuery, error) {
	var q ListQuery
	for _, name := range ListParams {
		if v := get(name); len(v) > maxListParamLen {
			return ListQuery{}, &ListParamError{name, fmt.Sprintf("longer than %d bytes", maxListParamLen)}
		}
	}
	q.Tenant, q.Route, q.Cursor = get("tenant"), get("route"), get("cursor")
	switch s := Status(get("status")); s {
	case "", StatusProcessing, StatusCompleted, StatusFailed:
		q.Status = s
	default:
		return ListQuery{}, &ListParamError{"status", "want processing, completed or failed"}
	}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		v := get(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return ListQuery{}, &ListParamError{p.name, "want an RFC 3339 time such as 2026-01-02T15:04:05Z"}
		}
		*p.to = t
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return ListQuery{}, &ListParamError{"until", "must be after since"}
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			return ListQuery{}, &ListParamError{"limit", fmt.Sprintf("want a whole number from 1 to %d", MaxListLimit)}
		}
		q.Limit = n
	}
	return q, nil
}
