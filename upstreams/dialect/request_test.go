package dialect

import (
	"errors"
	"strings"
	"testing"
)

func TestChatToMessagesFixtures(t *testing.T) {
	for _, tc := range []struct {
		name             string
		model            string
		defaultMaxTokens int
	}{
		{"basic", "claude-sonnet-4-5", 4096},
		{"vision", "claude-sonnet-4-5", 4096},
		{"tools", "claude-haiku-4-5", 4096},
		{"tool_choice_function", "claude-haiku-4-5", 4096},
		{"merge", "", 1024}, // model "" keeps the body's; no max_tokens takes the default
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := readFixture(t, fixture("chat_to_messages", tc.name, ".json"))
			got, err := ChatToMessages(in, tc.model, tc.defaultMaxTokens)
			if err != nil {
				t.Fatalf("cannot translate: %s", err)
			}
			checkJSONFixture(t, fixture("chat_to_messages", tc.name, ".want.json"), got)
		})
	}
}

func TestChatToMessagesDefaultMaxTokens(t *testing.T) {
	got, err := ChatToMessages([]byte(`{"messages":[{"role":"user","content":"hi"}]}`), "c", 0)
	if err != nil || !strings.Contains(string(got), `"max_tokens":4096`) {
		t.Fatalf("want DefaultMaxTokens without max_tokens or a default, got %s (%v)", got, err)
	}
}

func TestChatToMessagesErrors(t *testing.T) {
	f := func(body, wantParam, wantMessage string) {
		t.Helper()
		got, err := ChatToMessages([]byte(body), "claude", 1024)
		var re *RequestError
		if !errors.As(err, &re) {
			t.Fatalf("%s: want a *RequestError, got %s (%v)", body, got, err)
		}
		if re.Param != wantParam || !strings.Contains(re.Message, wantMessage) {
			t.Fatalf("%s: want param %q and a message with %q, got %q / %q", body, wantParam, wantMessage, re.Param, re.Message)
		}
	}
	user := `"messages":[{"role":"user","content":"hi"}]`
	f(`[]`, "", "not a JSON object")
	f(`null`, "", "not a JSON object")
	f(`{"messages":`, "", "not a JSON object")
	f(`{`+user+`,"n":2}`, "n", "n > 1")
	f(`{`+user+`,"n":"2"}`, "n", "must be an integer, not string")
	f(`{`+user+`,"logprobs":true}`, "logprobs", "not supported")
	f(`{`+user+`,"top_logprobs":3}`, "top_logprobs", "not supported")
	f(`{`+user+`,"logit_bias":{"50256":-100}}`, "logit_bias", "not supported")
	f(`{`+user+`,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}}}`, "response_format", `"json_schema"`)
	f(`{`+user+`,"response_format":{"type":"json_object"}}`, "response_format", `"json_object"`)
	f(`{`+user+`,"modalities":["text","audio"]}`, "modalities", `"audio"`)
	f(`{`+user+`,"audio":{"voice":"alloy","format":"wav"}}`, "audio", "not supported")
	f(`{`+user+`,"functions":[{"name":"f"}]}`, "functions", "use tools")
	f(`{"messages":"hi"}`, "messages", "must be an array")
	f(`{"messages":[]}`, "messages", "at least one")
	f(`{"messages":[{"role":"system","content":"only a system prompt"}]}`, "messages", "at least one")
	f(`{"messages":[{"role":"critic","content":"x"}]}`, "messages[0].role", `unknown role "critic"`)
	f(`{"messages":[{"role":"function","name":"f","content":"x"}]}`, "messages[0].role", "use tool")
	f(`{"messages":[{"role":"user","content":42}]}`, "messages[0].content", "string or an array")
	f(`{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`, "messages[0].content[0].type", "only text")
	f(`{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAA","format":"wav"}}]}]}`, "messages[0].content[0].type", `"input_audio"`)
	f(`{"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"f"}}]}]}`, "messages[0].content[0].type", `"file"`)
	f(`{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, "messages[0].content[0].image_url", "needs its image_url")
	f(`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}`, "messages[0].content[0].image_url.url", "http(s)")
	f(`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "messages[0].content[0].image_url.url", "base64")
	f(`{"messages":[{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{not json"}}]}]}`, "messages[0].tool_calls[0].function.arguments", "JSON object")
	f(`{"messages":[{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"[1,2]"}}]}]}`, "messages[0].tool_calls[0].function.arguments", "JSON object")
	f(`{"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}`, "messages[0].tool_calls[0]", "needs an id")
	f(`{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"custom","custom":{"name":"f","input":"x"}}]}]}`, "messages[0].tool_calls[0].type", `"custom"`)
	f(`{"messages":[{"role":"tool","content":"18 degrees"}]}`, "messages[0].tool_call_id", "tool_call_id")
	f(`{`+user+`,"tools":[{"type":"custom","custom":{"name":"grammar"}}]}`, "tools[0].type", `"custom"`)
	f(`{`+user+`,"tools":[{"type":"function","function":{"description":"no name"}}]}`, "tools[0].function.name", "needs a name")
	f(`{`+user+`,"tools":[{"type":"function","function":{"name":"f","parameters":"object"}}]}`, "tools[0].function.parameters", "JSON Schema object")
	f(`{`+user+`,"tool_choice":"sometimes"}`, "tool_choice", `unknown tool_choice "sometimes"`)
	f(`{`+user+`,"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}}}`, "tool_choice", "only")
	f(`{`+user+`,"tool_choice":3}`, "tool_choice", "string or an object")
	f(`{`+user+`,"stop":3}`, "stop", "string or an array")
	f(`{`+user+`,"stop":["a",1]}`, "stop", "must be a string")
	f(`{`+user+`,"temperature":"hot"}`, "temperature", "must be a number")
	f(`{`+user+`,"max_tokens":1.5}`, "max_tokens", "must be an integer")
	f(`{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":`+strings.Repeat(`{"a":`, 70)+`1`+strings.Repeat(`}`, 70)+`}}]}`, "", "nested deeper")
}

func TestMessagesToChatFixtures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model string
	}{
		{"basic", "gemini-2.0-flash"},
		{"blocks", "gpt-4o"},
		{"tools", "gpt-4o"},
		{"tool_choice_tool", "llama-3.3-70b-versatile"},
		{"tool_choice_auto", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := readFixture(t, fixture("messages_to_chat", tc.name, ".json"))
			got, err := MessagesToChat(in, tc.model)
			if err != nil {
				t.Fatalf("cannot translate: %s", err)
			}
			checkJSONFixture(t, fixture("messages_to_chat", tc.name, ".want.json"), got)
		})
	}
}

func TestMessagesToChatErrors(t *testing.T) {
	f := func(body, wantParam, wantMessage string) {
		t.Helper()
		got, err := MessagesToChat([]byte(body), "gpt")
		var re *RequestError
		if !errors.As(err, &re) {
			t.Fatalf("%s: want a *RequestError, got %s (%v)", body, got, err)
		}
		if re.Param != wantParam || !strings.Contains(re.Message, wantMessage) {
			t.Fatalf("%s: want param %q and a message with %q, got %q / %q", body, wantParam, wantMessage, re.Param, re.Message)
		}
	}
	user := `"max_tokens":10,"messages":[{"role":"user","content":"hi"}]`
	f(`"text"`, "", "not a JSON object")
	f(`{"max_tokens":10,"messages":[]}`, "messages", "at least one")
	f(`{"max_tokens":10,"messages":{"role":"user"}}`, "messages", "must be an array")
	f(`{"max_tokens":10,"messages":[{"role":"system","content":"x"}]}`, "messages[0].role", "user or assistant")
	f(`{"max_tokens":10,"messages":[{"role":"user","content":7}]}`, "messages[0].content", "string or an array")
	f(`{"max_tokens":10,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBER"}}]}]}`, "messages[0].content[0].type", `"document"`)
	f(`{"max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"file_1"}}]}]}`, "messages[0].content[0].source.type", `"file"`)
	f(`{"max_tokens":10,"messages":[{"role":"user","content":[{"type":"image"}]}]}`, "messages[0].content[0].source", "needs its source")
	f(`{"max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"AA"}}]}]}`, "messages[0].content[0].source.media_type", "media_type")
	f(`{"max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]}`, "messages[0].content[0].tool_use_id", "tool_use_id")
	f(`{"max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"document"}]}]}]}`, "messages[0].content[0].content[0].type", `"document"`)
	f(`{"max_tokens":10,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":"x"}]}]}`, "messages[0].content[0].input", "JSON object")
	f(`{"max_tokens":10,"messages":[{"role":"assistant","content":[{"type":"tool_use","name":"f","input":{}}]}]}`, "messages[0].content[0]", "needs an id")
	f(`{"max_tokens":10,"messages":[{"role":"assistant","content":[{"type":"server_tool_use","id":"s","name":"web_search","input":{}}]}]}`, "messages[0].content[0].type", `"server_tool_use"`)
	f(`{`+user+`,"system":[{"type":"image","source":{"type":"url","url":"https://x"}}]}`, "system[0].type", "only text")
	f(`{`+user+`,"system":5}`, "system", "string or an array")
	f(`{`+user+`,"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5}]}`, "tools[0].type", "server tool")
	f(`{`+user+`,"tools":[{"name":"f"}]}`, "tools[0].input_schema", "JSON Schema object")
	f(`{`+user+`,"tools":[{"input_schema":{"type":"object"}}]}`, "tools[0].name", "needs a name")
	f(`{`+user+`,"tool_choice":{"type":"tool"}}`, "tool_choice.name", "name")
	f(`{`+user+`,"tool_choice":{"type":"maybe"}}`, "tool_choice.type", `"maybe"`)
	f(`{`+user+`,"tool_choice":"auto"}`, "tool_choice", "must be an object")
	f(`{`+user+`,"stop_sequences":"END"}`, "stop_sequences", "must be an array")
	f(`{`+user+`,"max_tokens":"ten"}`, "max_tokens", "must be an integer")
	f(`{"messages":[{"role":"user","content":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}]}`, "", "nested deeper")
}
