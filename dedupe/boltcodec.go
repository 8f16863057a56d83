package dedupe

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// The embedded store's record encoding (issue 10). Encoding and decoding
// run in the single writer goroutine (boltgroup.go), where JSON through
// reflection (and base64 of the body) was a third of the writer's time;
// this encoding is a version byte and the fields in a fixed order, as
// uvarints, zigzag varints and length-prefixed bytes. A value that starts
// with '{' is the JSON of the earlier encoding and is still read, so a
// store file written before stays readable; every write uses this one.

// recordV1 is the first byte of a record in this encoding.
const recordV1 = 0x01

var errBadRecord = errors.New("bad record encoding")

// encodeRecord appends the encoding of r to dst.
func encodeRecord(dst []byte, r *boltRecord) []byte {
	t := &r.Task
	dst = append(dst, recordV1)
	dst = appendField(dst, t.Tenant)
	dst = appendField(dst, t.KeyHash)
	dst = appendField(dst, t.Fingerprint)
	dst = appendField(dst, string(t.Status))
	dst = binary.AppendVarint(dst, t.Fence)
	dst = appendField(dst, t.LeaseOwner)
	dst = appendStamp(dst, t.LeaseUntil)
	dst = appendFlag(dst, t.Stream)
	dst = appendField(dst, t.Model)
	dst = appendStamp(dst, t.CreatedAt)
	dst = appendStamp(dst, t.UpdatedAt)
	dst = appendStamp(dst, t.StartedAt)
	dst = appendStamp(dst, t.ExpiresAt)
	dst = appendTokens(dst, t.Usage)
	dst = appendFlag(dst, t.TooLarge)
	dst = appendField(dst, t.Error)
	dst = appendFlag(dst, t.Response != nil)
	if t.Response != nil {
		dst = binary.AppendVarint(dst, int64(t.Response.Status))
		dst = appendField(dst, t.Response.ContentType)
		dst = appendField(dst, string(t.Response.Body))
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Attempts)))
	for i := range r.Attempts {
		a := &r.Attempts[i]
		dst = binary.AppendVarint(dst, int64(a.N))
		dst = binary.AppendVarint(dst, a.Fence)
		dst = appendField(dst, a.Provider)
		dst = appendField(dst, a.Model)
		dst = appendField(dst, a.Outcome)
		dst = binary.AppendVarint(dst, int64(a.HTTPStatus))
		dst = appendField(dst, a.Error)
		dst = appendStamp(dst, a.StartedAt)
		dst = binary.AppendVarint(dst, a.DurationMS)
		dst = appendTokens(dst, a.Usage)
		dst = binary.AppendVarint(dst, int64(a.Continues))
	}
	return dst
}

// decodeRecord decodes v (either encoding) into r. With withBody false
// the stored answer is left out (r.Response stays nil), as the task list
// reads it; otherwise the body is copied, since v lives only as long as
// its transaction.
func decodeRecord(v []byte, r *boltRecord, withBody bool) error {
	if len(v) > 0 && v[0] == '{' {
		if !withBody {
			var m taskMeta
			err := json.Unmarshal(v, &m)
			*r = m.boltRecord
			return err
		}
		return json.Unmarshal(v, r)
	}
	d := recordDecoder{b: v}
	if d.byte() != recordV1 {
		return errBadRecord
	}
	*r = boltRecord{}
	t := &r.Task
	t.Tenant = d.string()
	t.KeyHash = d.string()
	t.Fingerprint = d.string()
	t.Status = Status(d.string())
	t.Fence = d.varint()
	t.LeaseOwner = d.string()
	t.LeaseUntil = d.time()
	t.Stream = d.bool()
	t.Model = d.string()
	t.CreatedAt = d.time()
	t.UpdatedAt = d.time()
	t.StartedAt = d.time()
	t.ExpiresAt = d.time()
	t.Usage = d.usage()
	t.TooLarge = d.bool()
	t.Error = d.string()
	if d.bool() {
		status := int(d.varint())
		contentType := d.string()
		body := d.bytes()
		if withBody {
			t.Response = &Response{Status: status, ContentType: contentType, Body: append([]byte{}, body...)}
		}
	}
	n := d.uvarint()
	if n > uint64(len(d.b)) { // every attempt takes bytes
		return errBadRecord
	}
	if n > 0 {
		r.Attempts = make([]Attempt, n)
	}
	for i := range r.Attempts {
		a := &r.Attempts[i]
		a.N = int(d.varint())
		a.Fence = d.varint()
		a.Provider = d.string()
		a.Model = d.string()
		a.Outcome = d.string()
		a.HTTPStatus = int(d.varint())
		a.Error = d.string()
		a.StartedAt = d.time()
		a.DurationMS = d.varint()
		a.Usage = d.usage()
		a.Continues = int(d.varint())
	}
	if d.bad || len(d.b) != 0 {
		return errBadRecord
	}
	return nil
}

func appendField(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendFlag(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// appendTime writes the zero time as 0 and any other as 1 and its Unix
// nanoseconds: the store compares times with Equal, and its own times are
// all within the range of UnixNano.
func appendStamp(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	return binary.AppendVarint(append(dst, 1), t.UnixNano())
}

func appendTokens(dst []byte, u Usage) []byte {
	dst = binary.AppendVarint(dst, u.PromptTokens)
	return binary.AppendVarint(dst, u.CompletionTokens)
}

// recordDecoder reads the fields of a record; the first short or bad
// field sets bad and makes every later read return zero values.
type recordDecoder struct {
	b   []byte
	bad bool
}

func (d *recordDecoder) byte() byte {
	if d.bad || len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *recordDecoder) bool() bool { return d.byte() == 1 }

func (d *recordDecoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) varint() int64 {
	if d.bad {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next length-prefixed field, aliasing the value.
func (d *recordDecoder) bytes() []byte {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) || n > math.MaxInt {
		d.bad = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) string() string { return string(d.bytes()) }

func (d *recordDecoder) time() time.Time {
	if !d.bool() {
		return time.Time{}
	}
	return time.Unix(0, d.varint())
}

func (d *recordDecoder) usage() Usage {
	return Usage{PromptTokens: d.varint(), CompletionTokens: d.varint()}
}

// DecodeEmbeddedTask decodes a value of the embedded store's tasks bucket
// (either encoding), for tools that read the file directly, such as the
// bench's read floor: one bbolt Get and this decode are what a replay
// from the file costs at the least.
func DecodeEmbeddedTask(v []byte) (Task, error) {
	var r boltRecord
	if err := decodeRecord(v, &r, true); err != nil {
		return Task{}, fmt.Errorf("cannot decode the task: %w", err)
	}
	return r.Task, nil
}
