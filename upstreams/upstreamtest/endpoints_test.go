package upstreamtest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestCompletionsNonStream(t *testing.T) {
	s := startServer(t)
	status, data := post(t, nil, s.URL+"/completions", `{"model":"m","prompt":"x"}`)
	var got struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Text         string `json:"text"`
			Index        int    `json:"index"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage usage `json:"usage"`
	}
	if err := json.Unmarshal(data, &got); status != 200 || err != nil {
		t.Fatalf("unexpected answer %d %s (%v)", status, data, err)
	}
	want := ContentFor(Behavior{}, "m")
	words := len(strings.Fields(want))
	if !strings.HasPrefix(got.ID, "cmpl-fake-") || got.Object != "text_completion" || got.Model != "m" ||
		len(got.Choices) != 1 || got.Choices[0].Text != want || got.Choices[0].FinishReason != "stop" ||
		got.Usage != (usage{10, words, 10 + words}) {
		t.Fatalf("unexpected completion %s", data)
	}
}

func TestEmbeddings(t *testing.T) {
	s := startServer(t)
	s.SetBehavior("e", Behavior{PromptTokens: 3})
	f := func(input string, wantInputs []string) {
		t.Helper()
		status, data := post(t, nil, s.URL+"/embeddings", `{"model":"e","input":`+input+`}`)
		var got struct {
			ID     string `json:"id"`
			Object string `json:"object"`
			Model  string `json:"model"`
			Data   []struct {
				Object    string    `json:"object"`
				Index     int       `json:"index"`
				Embedding []float64 `json:"embedding"`
			} `json:"data"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
				TotalTokens  int `json:"total_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(data, &got); status != 200 || err != nil {
			t.Fatalf("%s: unexpected answer %d %s (%v)", input, status, data, err)
		}
		if got.Object != "list" || got.Model != "e" || len(got.Data) != len(wantInputs) || got.Usage.PromptTokens != 3 || got.Usage.TotalTokens != 3 {
			t.Fatalf("%s: unexpected embeddings %s", input, data)
		}
		for i, d := range got.Data {
			if d.Object != "embedding" || d.Index != i || !reflect.DeepEqual(d.Embedding, EmbeddingFor([]byte(wantInputs[i]))) {
				t.Fatalf("%s: unexpected item %d: %+v", input, i, d)
			}
		}
	}
	f(`"hello"`, []string{`"hello"`})
	f(`["a","b"]`, []string{`"a"`, `"b"`})
	f(`[1,2,3]`, []string{`[1,2,3]`})
	f(`[[1,2],[3]]`, []string{`[1,2]`, `[3]`})
	if len(EmbeddingFor([]byte(`"a"`))) != EmbeddingDims || reflect.DeepEqual(EmbeddingFor([]byte(`"a"`)), EmbeddingFor([]byte(`"b"`))) {
		t.Fatalf("vectors must have %d dims and differ per input", EmbeddingDims)
	}
}

func TestResponses(t *testing.T) {
	s := startServer(t)
	b := Behavior{Content: "forty-two", PromptTokens: 5, CompletionTokens: 2}
	s.SetBehavior("r", b)
	status, data := post(t, nil, s.URL+"/responses", `{"model":"r","input":"q"}`)
	var got struct {
		ID     string `json:"id"`
		Object string `json:"object"`
		Status string `json:"status"`
		Model  string `json:"model"`
		Output []struct {
			Type    string `json:"type"`
			Role    string `json:"role"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
		Usage struct {
			InputTokens  int `json:"input_tokens"`
			OutputTokens int `json:"output_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(data, &got); status != 200 || err != nil {
		t.Fatalf("unexpected answer %d %s (%v)", status, data, err)
	}
	if !strings.HasPrefix(got.ID, "resp_fake_") || got.Object != "response" || got.Status != "completed" || got.Model != "r" ||
		len(got.Output) != 1 || got.Output[0].Type != "message" || got.Output[0].Role != "assistant" ||
		len(got.Output[0].Content) != 1 || got.Output[0].Content[0].Type != "output_text" || got.Output[0].Content[0].Text != "forty-two" ||
		got.Usage.InputTokens != 5 || got.Usage.OutputTokens != 2 || got.Usage.TotalTokens != 7 {
		t.Fatalf("unexpected response %s", data)
	}
}

func TestModels(t *testing.T) {
	s := startServer(t)
	s.SetBehavior("configured", Behavior{})
	s.SetBehavior("", Behavior{Chunks: 2}) // the default is not a model
	post(t, nil, s.URL+"/chat/completions", `{"model":"seen"}`)
	resp, err := httpGet(s.URL + "/models")
	if err != nil {
		t.Fatalf("cannot GET /models: %s", err)
	}
	var got modelList
	if err := json.Unmarshal(resp, &got); err != nil {
		t.Fatalf("cannot parse %s: %s", resp, err)
	}
	if got.Object != "list" || len(got.Data) != 2 || got.Data[0].ID != "configured" || got.Data[1].ID != "seen" || got.Data[0].Object != "model" {
		t.Fatalf("unexpected models %s", resp)
	}
}
