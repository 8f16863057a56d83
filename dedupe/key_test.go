package dedupe

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseKey(t *testing.T) {
	f := func(raw, want string) {
		t.Helper()
		got, err := ParseKey([]byte(raw))
		if err != nil {
			t.Fatalf("ParseKey(%q): unexpected error: %v", raw, err)
		}
		if got != want {
			t.Fatalf("ParseKey(%q) = %q, want %q", raw, got, want)
		}
	}
	f("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324")
	f("a", "a")
	f("  padded\t", "padded")
	f("inner space", "inner space")
	f("~!#$%&'()*+,-./:;<=>?@[]^_`{|}", "~!#$%&'()*+,-./:;<=>?@[]^_`{|}")
	f(`ab"c`, `ab"c`) // a quote inside an unquoted key is printable ASCII
	f(`abc"`, `abc"`) // only a leading quote starts an sf-string
	f(`a\b`, `a\b`)   // backslashes are not escapes outside quotes
	f(strings.Repeat("k", 255), strings.Repeat("k", 255))
	f("derived:abc", "derived:abc") // echoed derived keys are valid client keys

	// RFC 8941 sf-string form.
	f(`"8e03978e"`, "8e03978e")
	f(` "quoted" `, "quoted")
	f(`"a b"`, "a b")
	f(`"say \"hi\""`, `say "hi"`)
	f(`"back\\slash"`, `back\slash`)
	f(`"`+strings.Repeat("q", 255)+`"`, strings.Repeat("q", 255))
	f(`"`+strings.Repeat(`\\`, 255)+`"`, strings.Repeat(`\`, 255)) // length counts unquoted

	fErr := func(raw, why string) {
		t.Helper()
		got, err := ParseKey([]byte(raw))
		if err == nil {
			t.Fatalf("ParseKey(%q) = %q, want an error", raw, got)
		}
		if !errors.Is(err, ErrKeyInvalid) {
			t.Fatalf("ParseKey(%q): error %v does not wrap ErrKeyInvalid", raw, err)
		}
		if !strings.Contains(err.Error(), why) {
			t.Fatalf("ParseKey(%q): error %q does not say %q", raw, err, why)
		}
	}
	fErr("", "empty")
	fErr("   ", "empty")
	fErr("\t", "empty")
	fErr(`""`, "empty")
	fErr(`"  "`, "empty")
	fErr(strings.Repeat("k", 256), "256 characters long, at most 255")
	fErr(`"`+strings.Repeat("q", 256)+`"`, "256 characters long")
	fErr("clé", "byte 0xc3 at offset 2 is not printable ASCII")
	fErr("\U0001F600", "not printable ASCII")
	fErr("a\x00b", "byte 0x00 at offset 1")
	fErr("a\nb", "byte 0x0a at offset 1")
	fErr("a\tb", "byte 0x09")
	fErr("a\x7fb", "byte 0x7f")
	fErr(`"a\tb"`, `escape \t at offset 2`)
	fErr(`"caf\u00e9"`, `escape \u`)
	fErr(`"x"y`, "characters after the closing quote")
	fErr(`"x";p=1`, "characters after the closing quote")
	fErr(`"a"b"`, "characters after the closing quote")
	fErr(`"unterminated`, "no closing quote")
	fErr(`"`, "no closing quote")
	fErr(`"ends in escape\`, "no closing quote")
	fErr(`"escaped end\"`, "no closing quote")
	fErr("\"tab\tin\"", "byte 0x09 at offset 4")
	fErr("\"é\"", "not printable ASCII")
}

func TestRetryCount(t *testing.T) {
	f := func(raw string, want int) {
		t.Helper()
		if got := RetryCount([]byte(raw)); got != want {
			t.Fatalf("RetryCount(%q) = %d, want %d", raw, got, want)
		}
	}
	f("", 0)
	f("0", 0)
	f("1", 1)
	f(" 2 ", 2)
	f("10", 10)
	f("007", 7)
	f("-1", 0)
	f("+1", 0)
	f("1.5", 0)
	f("one", 0)
	f("1 2", 0)
	f("99999999999999999999999999", maxRetryCount)
}

func TestHashKey(t *testing.T) {
	// Pinned: stored hashes must survive upgrades. Computed independently
	// with: printf 'acme\0key-1' | sha256sum
	const want = "a1e0eddb234fc0178a329d566e0a94016e824b6aa59a13c2d3aba21a0203d87c"
	if got := HashKey("acme", "key-1"); got != want {
		t.Fatalf("HashKey = %s, want %s", got, want)
	}
	// The separator keeps tenant and key apart: "ab"+"c" is not "a"+"bc".
	if HashKey("ab", "c") == HashKey("a", "bc") {
		t.Fatal("HashKey does not separate tenant from key")
	}
	if HashKey("tenant-a", "1") == HashKey("tenant-b", "1") {
		t.Fatal("the same key of two tenants hashes the same")
	}
}

func TestFingerprint(t *testing.T) {
	// printf '{"a":1}' | sha256sum
	const want = "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
	if got := Fingerprint([]byte(`{"a":1}`)); got != want {
		t.Fatalf("Fingerprint = %s, want %s", got, want)
	}
}

func TestDeriveKey(t *testing.T) {
	body := []byte(`{"a":1}`)
	now := time.Unix(1699929600, 0) // 2023-11-14T02:40:00Z, a 10-minute boundary

	// Pinned, computed independently with
	// printf '/v1/chat/completions\n2833216\n{"a":1}' | sha256sum
	// (1699929600 / 600 = 2833216).
	const want = "derived:cd684a3362794bf7f6e986f9beb945030babab0e9f1aa4a36bf2a5b4bcaee9c4"
	if got := DeriveKey("/v1/chat/completions", body, 10*time.Minute, now); got != want {
		t.Fatalf("DeriveKey = %s, want %s", got, want)
	}
	// No window: printf '/v1/chat/completions\n\n{"a":1}' | sha256sum
	const wantNoWindow = "derived:582dba157a4bee24547640eef3384bc90913b916ea196b98a8447f5d98683eda"
	for _, w := range []time.Duration{0, -time.Second} {
		if got := DeriveKey("/v1/chat/completions", body, w, now); got != wantNoWindow {
			t.Fatalf("DeriveKey(window %s) = %s, want %s", w, got, wantNoWindow)
		}
		if got := DeriveKey("/v1/chat/completions", body, w, now.Add(240*time.Hour)); got != wantNoWindow {
			t.Fatalf("DeriveKey(window %s) depends on the time: %s", w, got)
		}
	}

	// Same window, same key; the next window, a new key.
	win := 10 * time.Minute
	k := DeriveKey("/v1/chat/completions", body, win, now)
	if got := DeriveKey("/v1/chat/completions", body, win, now.Add(win-time.Nanosecond)); got != k {
		t.Fatalf("last instant of the window gives %s, want %s", got, k)
	}
	if got := DeriveKey("/v1/chat/completions", body, win, now.Add(win)); got == k {
		t.Fatal("the next window gives the same key")
	}
	if got := DeriveKey("/v1/chat/completions", body, win, now.Add(-time.Nanosecond)); got == k {
		t.Fatal("the previous window gives the same key")
	}
	// Sub-second windows work and do not divide by zero.
	if a, b := DeriveKey("/r", body, time.Millisecond, now), DeriveKey("/r", body, time.Millisecond, now.Add(time.Millisecond)); a == b {
		t.Fatal("a 1ms window does not bucket by milliseconds")
	}

	if DeriveKey("/v1/completions", body, win, now) == k {
		t.Fatal("the route is not part of the derived key")
	}
	if DeriveKey("/v1/chat/completions", []byte(`{"a":2}`), win, now) == k {
		t.Fatal("the body is not part of the derived key")
	}
	// A derived key is a valid key to send back (the gateway echoes it).
	if got, err := ParseKey([]byte(k)); err != nil || got != k {
		t.Fatalf("ParseKey(derived key) = %q, %v", got, err)
	}
}
