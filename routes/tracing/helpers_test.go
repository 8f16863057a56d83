package tracing

import "github.com/idemgw/gateway/config"

func configFor(endpoint string) config.Tracing {
	return config.Tracing{OTLPEndpoint: endpoint, SampleRatio: 1}
}
