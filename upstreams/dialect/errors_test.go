package dialect

import (
	"strings"
	"testing"
)

func TestAnthropicErrorType(t *testing.T) {
	f := func(status int, want string) {
		t.Helper()
		if got := AnthropicErrorType(status); got != want {
			t.Fatalf("status %d: want %q, got %q", status, want, got)
		}
	}
	f(400, "invalid_request_error")
	f(401, "authentication_error")
	f(402, "billing_error")
	f(403, "permission_error")
	f(404, "not_found_error")
	f(408, "timeout_error")
	f(409, "invalid_request_error")
	f(413, "request_too_large")
	f(422, "invalid_request_error")
	f(429, "rate_limit_error")
	f(500, "api_error")
	f(502, "api_error")
	f(503, "overloaded_error")
	f(504, "timeout_error")
	f(529, "overloaded_error")
}

func TestAnthropicError(t *testing.T) {
	f := func(status int, typ, message, want string) {
		t.Helper()
		if got := string(AnthropicError(status, typ, message)); got != want {
			t.Fatalf("want %s, got %s", want, got)
		}
	}
	f(400, "", "max_tokens: Field required", `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}`)
	f(529, "", "Overloaded", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	f(503, "api_error", `"quoted" <tag>`, `{"type":"error","error":{"type":"api_error","message":"\"quoted\" <tag>"}}`)
}

func TestErrorToOpenAI(t *testing.T) {
	f := func(status int, body, want string) {
		t.Helper()
		if got := string(ErrorToOpenAI(status, []byte(body))); got != want {
			t.Fatalf("%d %s:\nwant %s\ngot  %s", status, body, want, got)
		}
	}
	f(400, `{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}`,
		`{"error":{"message":"messages: roles must alternate","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}`)
	f(401, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`,
		`{"error":{"message":"invalid x-api-key","type":"authentication_error","param":null,"code":"authentication_error"}}`)
	f(404, `{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}`,
		`{"error":{"message":"model: claude-9","type":"invalid_request_error","param":null,"code":"not_found_error"}}`)
	f(429, `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`,
		`{"error":{"message":"Number of request tokens has exceeded your per-minute rate limit","type":"rate_limit_error","param":null,"code":"rate_limit_error"}}`)
	f(529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
		`{"error":{"message":"Overloaded","type":"api_error","param":null,"code":"overloaded_error"}}`)
	f(403, `{"type":"error","error":{"type":"billing_error","message":"credit balance too low"}}`,
		`{"error":{"message":"credit balance too low","type":"permission_error","param":null,"code":"billing_error"}}`)
	// Not Anthropic's shape (a proxy's HTML page): the status speaks, the body is not echoed.
	f(502, `<html><body>502 Bad Gateway</body></html>`,
		`{"error":{"message":"the upstream answered 502","type":"api_error","param":null,"code":"api_error"}}`)
	f(413, ``, `{"error":{"message":"the upstream answered 413","type":"invalid_request_error","param":null,"code":"request_too_large"}}`)
}

func TestErrorToAnthropic(t *testing.T) {
	f := func(status int, body, want string) {
		t.Helper()
		if got := string(ErrorToAnthropic(status, []byte(body))); got != want {
			t.Fatalf("%d %s:\nwant %s\ngot  %s", status, body, want, got)
		}
	}
	f(400, `{"error":{"message":"Invalid value for 'temperature'.","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}`,
		`{"type":"error","error":{"type":"invalid_request_error","message":"Invalid value for 'temperature'."}}`)
	f(401, `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
		`{"type":"error","error":{"type":"authentication_error","message":"Incorrect API key provided."}}`)
	f(429, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`,
		`{"type":"error","error":{"type":"rate_limit_error","message":"You exceeded your current quota"}}`)
	f(503, `{"error":"model is overloaded"}`,
		`{"type":"error","error":{"type":"overloaded_error","message":"model is overloaded"}}`)
	f(404, `[{"error":{"code":404,"message":"models/gemini-9 is not found","status":"NOT_FOUND"}}]`,
		`{"type":"error","error":{"type":"not_found_error","message":"models/gemini-9 is not found"}}`)
	f(500, `{"message":"internal failure","code":500}`,
		`{"type":"error","error":{"type":"api_error","message":"internal failure"}}`)
	f(502, `upstream connect error`, `{"type":"error","error":{"type":"api_error","message":"the upstream answered 502"}}`)
}

func TestErrorMessageClipped(t *testing.T) {
	long := strings.Repeat("é", maxErrorMessage) // two bytes each
	got := string(ErrorToAnthropic(500, []byte(`{"error":{"message":"`+long+`"}}`)))
	if len(got) > maxErrorMessage+200 || !strings.Contains(got, "é…") || strings.Contains(got, `\ufffd`) {
		t.Fatalf("want the message clipped on a rune boundary, got %d bytes: %.80s…", len(got), got)
	}
}

func TestMessagesUsage(t *testing.T) {
	f := func(data string, wantPrompt, wantCompletion int64, wantOK bool) {
		t.Helper()
		p, c, ok := MessagesUsage([]byte(data))
		if p != wantPrompt || c != wantCompletion || ok != wantOK {
			t.Fatalf("%s: want %d/%d/%v, got %d/%d/%v", data, wantPrompt, wantCompletion, wantOK, p, c, ok)
		}
	}
	f(`{"id":"msg_1","type":"message","usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":10}}`, 2112, 10, true)
	f(`{"type":"message_start","message":{"id":"m","usage":{"input_tokens":25,"output_tokens":1}}}`, 25, 1, true)
	f(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}`, 0, 15, true)
	f(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"the \"usage\" word"}}`, 0, 0, false)
	f(`{"type":"ping"}`, 0, 0, false)
	f(`{"usage":`, 0, 0, false)
	f(`{"usage":{"input_tokens":"many"}}`, 0, 0, false)
}
