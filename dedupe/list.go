package dedupe

import (
	"errors"
	"time"
)

// The task list of GET /admin/tasks and the ledger page (issue 16):
// newest first, a page at a time, by keyset pagination on an index of
// creation time, so page n costs what page 1 costs (no offset scan).

// List limits.
const (
	// DefaultListLimit is the page size when the query sets none.
	DefaultListLimit = 50
	// MaxListLimit caps one page.
	MaxListLimit = 500
	// listScanBudget bounds how many tasks one page examines when a
	// filter the index does not cover (status, route, or a tenant in the
	// embedded store) drops most of them: the page then comes back short,
	// with a cursor where the scan stopped, instead of reading the whole
	// store for one page.
	listScanBudget = 5000
)

// ErrBadCursor is returned by List for a cursor it did not make.
var ErrBadCursor = errors.New("dedupe: invalid list cursor")

// ListQuery selects a page of tasks. Zero fields do not filter.
type ListQuery struct {
	Tenant string
	Status Status
	// Route is the route model a task was made for (Task.Model).
	Route string
	// Since and Until bound the creation time: Since <= created_at < Until.
	Since, Until time.Time
	// Limit is the page size, 1 to MaxListLimit (0: DefaultListLimit).
	Limit int
	// Cursor is ListPage.Next of the page before ("" starts at the newest).
	Cursor string
}

// limit is the page size the query asks for.
func (q ListQuery) limit() int {
	if q.Limit <= 0 {
		return DefaultListLimit
	}
	return min(q.Limit, MaxListLimit)
}

// TaskSummary is one task of a list page: the record without its
// response, and its attempts summarised.
type TaskSummary struct {
	Tenant    string    `json:"tenant"`
	KeyHash   string    `json:"key_hash"`
	Status    Status    `json:"status"`
	Fence     int64     `json:"fence"`
	Model     string    `json:"model"`
	Stream    bool      `json:"stream"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Usage     Usage     `json:"usage"`
	Error     string    `json:"error,omitempty"`
	// Attempts is how many attempts the ledger holds for the task.
	Attempts int `json:"attempts"`
	// Providers are the providers of its attempts, each once, in the
	// order first tried.
	Providers []string `json:"providers"`
	// LastOutcome is the outcome of its last attempt ("" without one).
	LastOutcome string `json:"last_outcome"`
	Served
}

// ListPage is one page of tasks, newest first.
type ListPage struct {
	Tasks []TaskSummary `json:"tasks"`
	// Next is the cursor of the next page, "" after the last one. A page
	// may hold fewer than Limit tasks and still have a Next: the scan
	// stopped at listScanBudget tasks.
	Next string `json:"next_cursor"`
}

// summarise fills the attempt summary of s from a task's attempts in order.
func (s *TaskSummary) summarise(providers, outcomes []string) {
	s.Attempts = len(providers)
	s.Providers = []string{}
	seen := map[string]bool{}
	for _, p := range providers {
		if !seen[p] {
			seen[p] = true
			s.Providers = append(s.Providers, p)
		}
	}
	if len(outcomes) > 0 {
		s.LastOutcome = outcomes[len(outcomes)-1]
	}
}

// matches reports whether t passes the filters of q that are not the
// keyset itself.
func (q ListQuery) matches(t *Task) bool {
	return (q.Tenant == "" || t.Tenant == q.Tenant) &&
		(q.Status == "" || t.Status == q.Status) &&
		(q.Route == "" || t.Model == q.Route) &&
		(q.Since.IsZero() || !t.CreatedAt.Before(q.Since)) &&
		(q.Until.IsZero() || t.CreatedAt.Before(q.Until))
}
