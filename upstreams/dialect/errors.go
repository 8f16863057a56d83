package dialect

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Anthropic error types (https://docs.claude.com/en/api/errors).
const (
	TypeInvalidRequest  = "invalid_request_error"
	TypeAuthentication  = "authentication_error"
	TypeBilling         = "billing_error"
	TypePermission      = "permission_error"
	TypeNotFound        = "not_found_error"
	TypeRequestTooLarge = "request_too_large"
	TypeRateLimit       = "rate_limit_error"
	TypeTimeout         = "timeout_error"
	TypeAPI             = "api_error"
	TypeOverloaded      = "overloaded_error"
)

// StatusOverloaded is Anthropic's own status for an overloaded API.
const StatusOverloaded = 529

// maxErrorMessage caps an error message carried from one dialect to the other.
const maxErrorMessage = 4096

// AnthropicErrorType returns the Anthropic error type of an HTTP status.
// Anthropic uses invalid_request_error for the 4xx it does not list.
func AnthropicErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return TypeAuthentication
	case http.StatusPaymentRequired:
		return TypeBilling
	case http.StatusForbidden:
		return TypePermission
	case http.StatusNotFound:
		return TypeNotFound
	case http.StatusRequestEntityTooLarge:
		return TypeRequestTooLarge
	case http.StatusTooManyRequests:
		return TypeRateLimit
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return TypeTimeout
	case http.StatusServiceUnavailable, StatusOverloaded:
		return TypeOverloaded
	}
	if status >= 500 {
		return TypeAPI
	}
	return TypeInvalidRequest
}

// AnthropicError renders Anthropic's error body,
// {"type":"error","error":{"type":"...","message":"..."}}; typ "" takes
// the type of status.
func AnthropicError(status int, typ, message string) []byte {
	if typ == "" {
		typ = AnthropicErrorType(status)
	}
	return mustMarshal(anthropicErrorBody{Type: "error", Error: errorDetail{Type: typ, Message: message}})
}

type anthropicErrorBody struct {
	Type  string      `json:"type"`
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// openAIErrorBody is OpenAI's error shape, param and code null when unknown.
type openAIErrorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// openAIError renders OpenAI's error body.
func openAIError(typ, code, message string) []byte {
	var b openAIErrorBody
	b.Error.Message = message
	b.Error.Type = typ
	if code != "" {
		b.Error.Code = &code
	}
	return mustMarshal(b)
}

// openAITypeOf maps an Anthropic error type to OpenAI's, keeping the
// names both APIs share and following the gateway's own errors
// (api_error for server faults) for the rest.
func openAITypeOf(anthropicType string, status int) string {
	switch anthropicType {
	case TypeInvalidRequest, TypeAuthentication, TypePermission, TypeRateLimit, TypeAPI:
		return anthropicType
	case TypeOverloaded, TypeTimeout:
		return TypeAPI
	}
	switch {
	case status == http.StatusUnauthorized:
		return TypeAuthentication
	case status == http.StatusForbidden:
		return TypePermission
	case status == http.StatusTooManyRequests:
		return TypeRateLimit
	case status >= 500:
		return TypeAPI
	}
	return TypeInvalidRequest
}

// ErrorToOpenAI converts an Anthropic error body, answered with status,
// into OpenAI's shape: the message is kept, the Anthropic type becomes
// the code (overloaded_error, not_found_error stay visible) and picks the
// OpenAI type. A body that is not Anthropic's shape gets a message naming
// the status, rather than echoing whatever the upstream sent.
func ErrorToOpenAI(status int, body []byte) []byte {
	typ, message := anthropicErrorOf(body)
	if message == "" {
		message = fmt.Sprintf("the upstream answered %d", status)
	}
	code := typ
	if code == "" {
		code = AnthropicErrorType(status)
	}
	return openAIError(openAITypeOf(typ, status), code, message)
}

// anthropicErrorOf reads type and message of an Anthropic error body.
func anthropicErrorOf(body []byte) (typ, message string) {
	if checkJSON(body, MaxEventBytes) != nil {
		return "", ""
	}
	var b struct {
		Error *struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil || b.Error == nil {
		return "", ""
	}
	return b.Error.Type, clip(b.Error.Message)
}

// ErrorToAnthropic converts an OpenAI(-compatible) error body, answered
// with status, into Anthropic's shape: the type follows from the status,
// as Anthropic's SDKs expect, and the message is kept. It reads OpenAI's
// {"error":{"message":...}}, the {"error":"..."} and {"message":...} of
// some compatible servers, and the array of one error that Gemini's sends;
// any other body gets a message naming the status.
func ErrorToAnthropic(status int, body []byte) []byte {
	message := openAIMessageOf(body)
	if message == "" {
		message = fmt.Sprintf("the upstream answered %d", status)
	}
	return AnthropicError(status, "", message)
}

func openAIMessageOf(body []byte) string {
	if checkJSON(body, MaxEventBytes) != nil {
		return ""
	}
	body = []byte(strings.TrimSpace(string(body)))
	if firstByte(body) == '[' {
		var list []json.RawMessage
		if json.Unmarshal(body, &list) != nil || len(list) == 0 {
			return ""
		}
		body = list[0]
	}
	var b struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	switch firstByte(b.Error) {
	case '"':
		var s string
		_ = json.Unmarshal(b.Error, &s)
		return clip(s)
	case '{':
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(b.Error, &e)
		return clip(e.Message)
	}
	return clip(b.Message)
}

// clip bounds a message carried across, cutting at a rune boundary.
func clip(s string) string {
	if len(s) <= maxErrorMessage {
		return s
	}
	cut := maxErrorMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
