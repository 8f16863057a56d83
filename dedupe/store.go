package dedupe

import (
	"context"
	"errors"
	"time"
)

// Status is a task's state (DESIGN.md section 2).
type Status string

// Task states.
const (
	StatusProcessing Status = "processing"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
)

// Store errors.
var (
	// ErrFenced is returned when a write carries a fence that is no longer
	// the task's current one: the caller lost its lease to a take-over.
	ErrFenced = errors.New("dedupe: stale fence")
	// ErrNotFound is returned by Get when there is no such task.
	ErrNotFound = errors.New("dedupe: task not found")
)

// Response is what a completed task replays.
type Response struct {
	// Status is the HTTP status the client got.
	Status int
	// ContentType of the body (text/event-stream for streams).
	ContentType string
	// Body is the response body; for a stream, the raw SSE transcript as
	// the upstream sent it (events separated by blank lines).
	Body []byte
}

// Usage is the token usage reported by the upstream.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// Task is the durable record of one idempotent request.
type Task struct {
	Tenant      string
	KeyHash     string // hex sha256 of the idempotency key; the raw key is never stored
	Fingerprint string // hex sha256 of the canonical request body
	Status      Status
	Fence       int64
	LeaseOwner  string
	LeaseUntil  time.Time
	Stream      bool
	// Model is the route model the client asked for (for metrics on replay).
	Model     string
	CreatedAt time.Time
	UpdatedAt time.Time
	// StartedAt is when the current fence began; MaxProcessing counts from it.
	StartedAt time.Time
	// ExpiresAt is when a finished task may be deleted (zero while processing).
	ExpiresAt time.Time
	Usage     Usage
	// TooLarge marks a completed task whose response exceeded
	// max_record_bytes: it is not replayable.
	TooLarge bool
	// Error is the last failure reason of a failed task.
	Error string
	// Response is set for completed tasks (nil when TooLarge).
	Response *Response
}

// Attempt is one upstream call made for a task.
type Attempt struct {
	N        int    `json:"n"`
	Fence    int64  `json:"fence"`
	Provider string `json:"provider"`
	Model    string `json:"model"`
	// Outcome is the attempt outcome of DESIGN.md section 3 as upstreams
	// names it (started, success, timeout, error, rate_limited, cut,
	// skipped, abandoned), kept as a string: dedupe does not import upstreams.
	Outcome    string    `json:"outcome"`
	HTTPStatus int       `json:"http_status"`
	Error      string    `json:"error"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	Usage      Usage     `json:"usage"`
	// Continues is the number N of the cut stream attempt this one
	// continues (on_stream_cut: continue, issue 15); 0 for the others.
	// A leader's Ticket takes it as the position of that attempt among
	// the leader's own (from 1, as the chain counts) and stores its N.
	Continues int `json:"continues,omitempty"`
}

// Verdict is what Store.Begin found for a key: the state of its row, which
// the coordinator turns into a Decision for the request (an in-flight
// verdict becomes a wait, a join, a conflict or a bypass).
type Verdict int

// Begin verdicts.
const (
	// VerdictLeader: a new task was inserted (fence 1) or a failed or
	// expired one restarted (fence+1); the caller must call upstream.
	VerdictLeader Verdict = iota + 1
	// VerdictReclaimed: a zombie (processing, lease expired or past
	// max_processing) was taken over with fence+1; the caller is leader.
	VerdictReclaimed
	// VerdictCompleted: the task is completed with the same fingerprint; replay it.
	VerdictCompleted
	// VerdictInFlight: another leader holds a valid lease.
	VerdictInFlight
	// VerdictMismatch: the key exists with a different fingerprint; nothing was changed.
	VerdictMismatch
)

// BeginRequest is the input of Store.Begin.
type BeginRequest struct {
	Tenant      string
	KeyHash     string
	Fingerprint string
	Stream      bool
	Model       string
	// Owner identifies this gateway process (for the lease).
	Owner string
	// Lease is how long the leader's lease lasts without a heartbeat.
	Lease time.Duration
	// MaxProcessing caps how long one fence may stay processing.
	MaxProcessing time.Duration
	// MaxAge, when set, restarts a finished task that finished longer ago
	// than this, as if it had expired: derived keys answer the same body
	// again only within derive_window, measured from the answer, so there
	// is no bucket boundary for a retry to fall across.
	MaxAge time.Duration
	// Fresh restarts a finished task (completed, failed, any fingerprint)
	// as leader instead of replaying it: a first try under derive:
	// retries replaces the record of an earlier identical first try.
	Fresh bool
	// First, when its Provider is set, is the attempt the leader is about
	// to make: a Begin that makes the caller leader writes it with outcome
	// started in the same transaction (DESIGN.md section 3), so a new task
	// still costs one durable commit to start.
	First Attempt
	// AttemptWindow, when set, makes a Begin that makes the caller leader
	// of an existing task count the attempts its earlier leaders made
	// within this window (BeginResult.RecentAttempts): key_attempts is
	// counted from the attempt log, so a client's retries cannot multiply
	// the gateway's fallbacks (DESIGN.md section 7). Skipped attempts cost
	// nothing and are not counted; abandoned ones may have been paid and are.
	AttemptWindow time.Duration
	// AttemptBudget, when above 0, is key_attempts: a leader whose key
	// already made that many attempts within AttemptWindow gets no first
	// attempt written (First is ignored), since it will make no call.
	AttemptBudget int
	// AttemptRetention is key_ttl: a Begin that restarts a finished task
	// (expired, past MaxAge, or Fresh) keeps the attempts of its earlier
	// generations that started within this long, so a key restarted by
	// derive_window or derive: retries keeps its paid calls in the ledger
	// until they are as old as any expired record would be; 0 keeps none.
	AttemptRetention time.Duration
	// Skipped are the targets the leader will skip before First (breaker
	// open, no api_key), written with outcome skipped and their Error
	// before it in the same transaction: a skip costs no commit of its own.
	Skipped []Attempt
}

// BeginResult is the output of Store.Begin. Task is the row after
// Begin (for VerdictLeader/VerdictReclaimed, Task.Fence is the caller's fence).
type BeginResult struct {
	Verdict Verdict
	Task    Task
	// Started is the attempt Begin wrote as started (BeginRequest.First
	// with its N and fence), nil when it wrote none.
	// RecentAttempts is, for a leader, how many attempts of the task
	// started within BeginRequest.AttemptWindow before this Begin (0 for a
	// new task, or without a window).
	RecentAttempts int
	Started        *Attempt
	// Abandoned are the attempts of the previous leader that a take-over
	// found still started and marked abandoned: calls that may have been
	// paid for and whose answer is lost.
	Abandoned []Attempt
}

// Completion is what a leader stores when its task succeeded.
type Completion struct {
	Response Response
	Usage    Usage
	TooLarge bool
	// TTL is how long the completed task is kept (key_ttl).
	TTL time.Duration
	// Generation, when set, is the CreatedAt of the task the leader began:
	// fences restart at 1 when the reaper deletes a record and the key is
	// used again, so the fence alone cannot tell a long-stalled leader of
	// the old task from the new task's leader. A mismatch is ErrFenced.
	Generation time.Time
	// Attempt, when set, is the final record of the attempt that answered,
	// written in the same transaction.
	Attempt *Attempt
}

// Store is the durable record store, the source of truth for
// deduplication. Every method is safe for concurrent use across
// processes sharing the same backing database; every write of a leader
// carries its fence and returns ErrFenced when it is stale.
type Store interface {
	// Begin atomically inserts a processing task or decides what to do
	// with the existing one (see Verdict).
	Begin(ctx context.Context, req BeginRequest) (BeginResult, error)
	// Heartbeat extends the lease of a processing task held at fence.
	Heartbeat(ctx context.Context, tenant, keyHash string, fence int64, lease time.Duration) error
	// Complete stores the response and marks the task completed.
	Complete(ctx context.Context, tenant, keyHash string, fence int64, c Completion) error
	// Fail marks the task failed; the next Begin restarts it with fence+1.
	Fail(ctx context.Context, tenant, keyHash string, fence int64, f Failure) error
	// StartAttempt writes, in one transaction, the final record of the
	// attempt that just ended (if any) and the next attempt as started,
	// before its call goes out; it extends the lease as a heartbeat does.
	StartAttempt(ctx context.Context, tenant, keyHash string, fence int64, s AttemptStart) error
	// Get returns the task and its attempts in order, or ErrNotFound.
	Get(ctx context.Context, tenant, keyHash string) (Task, []Attempt, error)
	// Lookup returns the task without its attempts, or ErrNotFound: what
	// a duplicate needs to replay, wait or join, in one indexed read.
	Lookup(ctx context.Context, tenant, keyHash string) (Task, error)
	// List returns a page of task summaries, newest first (list.go), or
	// ErrBadCursor.
	List(ctx context.Context, q ListQuery) (ListPage, error)
	// AddServed adds replay and join counts to the generations of tasks
	// they name; a count of a generation that is gone is dropped.
	AddServed(ctx context.Context, counts []ServedCount) error
	// Served returns the counts of the current generation of a task.
	Served(ctx context.Context, tenant, keyHash string) (Served, error)
	// ReclaimZombies fails up to limit processing tasks whose lease ran
	// out or which outlived maxProcessing, bumping their fence so the old
	// worker's late writes are refused, and marks their started attempts
	// abandoned in the same transaction.
	ReclaimZombies(ctx context.Context, maxProcessing time.Duration, limit int) (Reclaimed, error)
	// DeleteExpired deletes up to limit finished tasks (and their
	// attempts) whose expiry has passed, and returns how many.
	DeleteExpired(ctx context.Context, limit int) (int, error)
	// Health reports the store's size, dead rows and oldest processing
	// task, for the gateway_store_* gauges. It is read off the request
	// path, every few seconds.
	Health(ctx context.Context) (Health, error)
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}
