package overhead

import (
	"fmt"
	"math/rand"
	"net/http"
	"strconv"
)

// Payloads: what a request carries. Every request also carries a hint header
// and an x-pixels header (read by the headers-only rules).
const (
	PayloadHeaders = "headers" // a 34-byte JSON prompt; the route reads headers only
	Payload64KB    = "64KB"    // a 64 KiB JSON body; the route reads body.width and body.height
	Payload1MB     = "1MB"     // the same with a 1 MiB body
)

// Paths the requests are sent to: the switchyard config and both router apps
// route /hdr/ by headers and anything else by body fields.
const (
	headersPath = "/hdr/v1/generate"
	bodyPath    = "/v1/generate"
)

// smallLimit is the rule's threshold in pixels, in every setup.
const smallLimit = 1048576

// request is one payload's request, relative to a base URL.
type request struct {
	path   string
	body   []byte
	header http.Header
}

func newRequest(payload string) (request, error) {
	h := http.Header{
		"Content-Type":      {"application/json"},
		"X-Fal-Runner-Hint": {"sdxl"},
		"X-Pixels":          {strconv.Itoa(smallLimit)},
	}
	switch payload {
	case PayloadHeaders:
		return request{path: headersPath, body: []byte(`{"prompt":"a lighthouse at dusk"}`), header: h}, nil
	case Payload64KB:
		return request{path: bodyPath, body: imageBody(64 << 10), header: h}, nil
	case Payload1MB:
		return request{path: bodyPath, body: imageBody(1 << 20), header: h}, nil
	}
	return request{}, fmt.Errorf("unknown payload %q", payload)
}

// imageBody is a JSON body of exactly size bytes shaped like an image-to-image
// request: a prompt, a base64 image filling the size, and the fields the rule
// reads at the very end, so that finding them means scanning the whole body.
func imageBody(size int) []byte {
	const (
		head = `{"prompt":"a lighthouse at dusk","image":"`
		tail = `","width":1024,"height":1024}`
		b64  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	)
	rng := rand.New(rand.NewSource(1))
	b := make([]byte, 0, size)
	b = append(b, head...)
	for len(b) < size-len(tail) {
		b = append(b, b64[rng.Intn(len(b64))])
	}
	return append(b, tail...)
}
