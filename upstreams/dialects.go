package upstreams

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams/dialect"
)

// The chain's side of DESIGN.md section 7 "Dialects": which target can
// serve which endpoint, and what changes when the target speaks another
// dialect than the client. The translation itself is upstreams/dialect's.

// Dialect is the API a client request or a provider speaks.
type Dialect uint8

// Dialects.
const (
	// DialectOpenAI is OpenAI's API (kind openai, the /v1/chat/completions
	// family of endpoints).
	DialectOpenAI Dialect = iota
	// DialectAnthropic is Anthropic's Messages API (kind anthropic,
	// /v1/messages and /v1/messages/count_tokens).
	DialectAnthropic
)

// Paths of Anthropic's Messages API, which the gateway serves to clients
// and calls on kind anthropic providers.
const (
	MessagesPath    = "/v1/messages"
	CountTokensPath = "/v1/messages/count_tokens"
	chatPath        = "/v1/chat/completions"
)

// DialectOf returns the dialect of a client's path.
func DialectOf(path string) Dialect {
	if path == MessagesPath || path == CountTokensPath {
		return DialectAnthropic
	}
	return DialectOpenAI
}

func dialectOfKind(k config.ProviderKind) Dialect {
	if k == config.ProviderAnthropic {
		return DialectAnthropic
	}
	return DialectOpenAI
}

// conversion is how a target serves a client's request.
type conversion uint8

const (
	// passThrough: the same dialect on both sides, the client's bytes
	// with only model rewritten.
	passThrough conversion = iota
	// chatToMessages: an OpenAI chat request to a kind anthropic target.
	chatToMessages
	// messagesToChat: an Anthropic Messages request to a kind openai target.
	messagesToChat
)

// serves reports how p serves a client request to path; ok is false when
// its kind cannot (embeddings on kind anthropic, count_tokens on kind
// openai): such a target is skipped.
func (p *Provider) serves(path string) (conv conversion, ok bool) {
	switch {
	case p.dialect == DialectOf(path):
		return passThrough, true
	case p.dialect == DialectAnthropic && path == chatPath:
		return chatToMessages, true
	case p.dialect == DialectOpenAI && path == MessagesPath:
		return messagesToChat, true
	}
	return 0, false
}

// cannotServe is the skip reason of a target whose kind cannot serve path.
func (p *Provider) cannotServe(path string) string {
	return fmt.Sprintf("provider %q (kind %s) does not serve %s", p.Name, p.kind, path)
}

// Serves reports whether at least one target of the chain can serve a
// client request to path; when none can, the request is the client's
// mistake (a 400 before any record), not an upstream failure.
func (c *Chain) Serves(path string) bool {
	for _, t := range c.Targets {
		if _, ok := t.Provider.serves(path); ok {
			return true
		}
	}
	return false
}

// prepared is a request made ready for one target: the path and body
// it is sent with, the model named upstream and how its answer is turned
// back into the client's dialect.
type prepared struct {
	path  string
	body  []byte
	model string
	conv  conversion
}

// prepare builds t's request from the client's: the body as sent with
// only model rewritten, or translated when t speaks another dialect. A
// request the other dialect cannot express is a *dialect.RequestError.
func (c *Chain) prepare(t Target, req Request) (prepared, error) {
	conv, ok := t.Provider.serves(req.Path)
	if !ok {
		return prepared{}, fmt.Errorf("%s", t.Provider.cannotServe(req.Path))
	}
	pr := prepared{path: req.Path, body: req.Body, model: req.Model, conv: conv}
	if t.Model != "" {
		pr.model = t.Model
	}
	var err error
	switch conv {
	case chatToMessages:
		pr.path = MessagesPath
		pr.body, err = dialect.ChatToMessages(req.Body, pr.model, t.Provider.defaultMaxTokens)
	case messagesToChat:
		pr.path = chatPath
		pr.body, err = dialect.MessagesToChat(req.Body, pr.model)
	default:
		if t.Model != "" {
			// json.Marshal, not strconv.Quote: Go's \x escapes are not JSON.
			quoted, qerr := json.Marshal(t.Model)
			if qerr != nil {
				return prepared{}, fmt.Errorf("cannot rewrite model: %w", qerr)
			}
			if pr.body, err = ReplaceField(req.Body, "model", quoted); err != nil {
				return prepared{}, fmt.Errorf("cannot rewrite model: %w", err)
			}
		}
	}
	return pr, err
}

// answer turns a whole 2xx upstream body into the client's dialect and
// reads its usage (Anthropic's, cache tokens included, from a kind
// anthropic target).
func (pr prepared) answer(p *Provider, body []byte) ([]byte, Usage, error) {
	u := p.usageOf(body)
	switch pr.conv {
	case chatToMessages:
		out, err := dialect.MessageToChatCompletion(body, "")
		return out, u, err
	case messagesToChat:
		out, err := dialect.ChatCompletionToMessage(body, "")
		return out, u, err
	}
	return body, u, nil
}

// errorBody turns an upstream error body into the client's dialect.
func (pr prepared) errorBody(status int, body []byte) []byte {
	switch pr.conv {
	case chatToMessages:
		return dialect.ErrorToOpenAI(status, body)
	case messagesToChat:
		return dialect.ErrorToAnthropic(status, body)
	}
	return body
}

// translator is a stream translation of upstreams/dialect, in either
// direction.
type translator interface {
	Translate(event []byte) ([][]byte, error)
	Done() bool
	Usage() (prompt, completion int64)
}

// streamTranslator returns the translation of a stream answer, nil for
// a pass-through one.
func (pr prepared) streamTranslator(clientBody []byte) translator {
	switch pr.conv {
	case chatToMessages:
		return dialect.NewMessagesToChatStream("", dialect.IncludeUsage(clientBody))
	case messagesToChat:
		return dialect.NewChatToMessagesStream("")
	}
	return nil
}

// usageOf reads the usage of a whole answer of p's dialect.
func (p *Provider) usageOf(body []byte) Usage {
	if p.dialect == DialectAnthropic {
		prompt, completion, _ := dialect.MessagesUsage(body)
		return Usage{PromptTokens: prompt, CompletionTokens: completion}
	}
	u, _ := ParseUsage(body)
	return u
}

var anthropicErrorType = []byte(`"error"`)

// anthropicEnd reads the data of one event of an Anthropic stream
// relayed as it is: end is message_stop or an error event, and failed
// is the error event, whose stream must not be recorded as complete.
func anthropicEnd(data []byte) (end, failed bool) {
	if !dialect.MessagesStreamEnd(data) {
		return false, false
	}
	var ev map[string]json.RawMessage // exact names, as MessagesStreamEnd reads them
	_ = json.Unmarshal(data, &ev)
	return true, bytes.Equal(bytes.TrimSpace(ev["type"]), anthropicErrorType)
}

// anthropicErrorMessage is the type and message of an Anthropic error
// event's data, for the attempt's record.
func anthropicErrorMessage(data []byte) string {
	var ev struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(data, &ev)
	if ev.Error.Type == "" && ev.Error.Message == "" {
		return "the upstream stream reported an error"
	}
	return ev.Error.Type + ": " + ev.Error.Message
}
