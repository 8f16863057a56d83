package config

import "strings"

// validateClientKeyLimits checks the per-key limits of auth.keys[i] and its
// tenant name, which becomes the tenant label of the limit metric.
func validateClientKeyLimits(v *validator, path string, k ClientKey) {
	if strings.ContainsAny(k.Tenant, "\"\\") || strings.ContainsFunc(k.Tenant, isControl) {
		v.errorf(path+".tenant", "must not contain quotes, backslashes or control characters")
	}
	if k.MaxInflight < 0 {
		v.errorf(path+".max_inflight", "must not be negative (0 = unlimited), got %d", k.MaxInflight)
	}
	if k.RequestsPerMinute < 0 {
		v.errorf(path+".requests_per_minute", "must not be negative (0 = unlimited), got %d", k.RequestsPerMinute)
	}
}
