package config

import "testing"

func TestDedupeFlags(t *testing.T) {
	yes, no := true, false
	f := func(d Dedupe, enabled, detach bool) {
		t.Helper()
		if d.IsEnabled() != enabled || d.Detach() != detach {
			t.Fatalf("%+v: IsEnabled %v Detach %v, want %v %v", d, d.IsEnabled(), d.Detach(), enabled, detach)
		}
	}
	f(Dedupe{}, true, true)
	f(Dedupe{Enabled: &no, DetachOnDisconnect: &no}, false, false)
	f(Dedupe{Enabled: &yes, DetachOnDisconnect: &no}, true, false)
}

func TestClientKeyHash(t *testing.T) {
	const hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" // sha256("password")
	f := func(k ClientKey, want string) {
		t.Helper()
		if got := k.Hash(); got != want {
			t.Fatalf("%+v.Hash() = %q, want %q", k, got, want)
		}
	}
	f(ClientKey{Key: "password"}, hash)
	f(ClientKey{SHA256: hash}, hash)
	f(ClientKey{SHA256: "5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8"}, hash)
}
