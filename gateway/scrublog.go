package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/idemgw/gateway/config"
)

// scrubHandler removes the config's secrets from every log line: its
// message and every string (or error, or Stringer) attribute, whichever
// component logged it (requests, go-redis, fasthttp, reloads). A line
// without secrets goes to the inner handler as it is.
type scrubHandler struct {
	inner slog.Handler
	scrub *atomic.Pointer[config.Scrubber] // swapped by a reload
}

func (h scrubHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	s := h.scrub.Load()
	dirty := s.String(r.Message) != r.Message
	r.Attrs(func(a slog.Attr) bool {
		_, changed := scrubAttr(s, a)
		dirty = dirty || changed
		return !dirty
	})
	if !dirty {
		return h.inner.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, s.String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		clean, _ := scrubAttr(s, a)
		out.AddAttrs(clean)
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h scrubHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	s := h.scrub.Load()
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i], _ = scrubAttr(s, a)
	}
	return scrubHandler{inner: h.inner.WithAttrs(clean), scrub: h.scrub}
}

func (h scrubHandler) WithGroup(name string) slog.Handler {
	return scrubHandler{inner: h.inner.WithGroup(name), scrub: h.scrub}
}

// scrubAttr returns a without secrets and whether that changed it;
// texts of errors and Stringers become strings, since their text is what
// the log would show.
func scrubAttr(s *config.Scrubber, a slog.Attr) (slog.Attr, bool) {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if c := s.String(v.String()); c != v.String() {
			return slog.String(a.Key, c), true
		}
	case slog.KindGroup:
		g := v.Group()
		clean := make([]slog.Attr, len(g))
		changed := false
		for i, ga := range g {
			var c bool
			clean[i], c = scrubAttr(s, ga)
			changed = changed || c
		}
		if changed {
			return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}, true
		}
	case slog.KindAny:
		var text string
		switch x := v.Any().(type) {
		case error:
			text = x.Error()
		case fmt.Stringer:
			text = x.String()
		default:
			return a, false
		}
		if c := s.String(text); c != text {
			return slog.String(a.Key, c), true
		}
	}
	return a, false
}
