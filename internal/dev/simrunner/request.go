package simrunner

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"time"
)

// HintHeader is the request header a model is taken from when the body
// names none; HintsHeader is the response header with the models held.
const (
	HintHeader  = "X-Fal-Runner-Hint"
	HintsHeader = "X-Fal-Runner-Hints"
	NameHeader  = "X-Sim-Runner"
)

// maxBody bounds what a runner reads of a request body; inference bodies
// with base64 images are large, but not this large.
const maxBody = 64 << 20

// fullSize is the pixel count InferTime is quoted for (1024x1024).
const fullSize = 1024 * 1024

// ReferenceSteps is the num_inference_steps InferTime is quoted for, when
// a body names its steps.
const ReferenceSteps = 30

// job is what the runner takes from a request.
type job struct {
	model         string
	width, height float64 // 0 when the body has no usable size
	steps         float64 // 0 when the body names none
	// imageURL is the body's image_url: the answer names the image the
	// runner made from it, so a chain of steps shows in the last answer.
	imageURL string
}

// parseJob reads the fields the runner cares about. A body that is not a
// JSON object, or a field of the wrong type, counts as absent: the runner
// serves anything, as a lenient model server would.
func parseJob(body []byte, h http.Header) job {
	var j job
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil {
		_ = json.Unmarshal(fields["model"], &j.model)
		_ = json.Unmarshal(fields["width"], &j.width)
		_ = json.Unmarshal(fields["height"], &j.height)
		_ = json.Unmarshal(fields["num_inference_steps"], &j.steps)
		_ = json.Unmarshal(fields["image_url"], &j.imageURL)
	}
	if j.width <= 0 || j.height <= 0 {
		j.width, j.height = 0, 0
	}
	if j.steps <= 0 {
		j.steps = 0
	}
	j.model = strings.TrimSpace(j.model)
	if j.model == "" {
		j.model = strings.TrimSpace(h.Get(HintHeader))
	}
	return j
}

// Scale is what an image of width × height pixels and steps inference
// steps costs relative to InferTime's: its pixels over 1024x1024 (never
// below a tenth), times its steps over ReferenceSteps. A zero size or zero
// steps counts as the reference.
func Scale(width, height, steps float64) float64 {
	scale := 1.0
	if width > 0 && height > 0 {
		scale = max(width*height/fullSize, 0.1)
	}
	if steps > 0 {
		scale *= steps / ReferenceSteps
	}
	return scale
}

// inferTime scales base by the job's size (Scale).
func (j job) inferTime(base time.Duration) time.Duration {
	d := float64(base) * Scale(j.width, j.height, j.steps)
	if d >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(d)
}

// echoHeaders returns the request's x- headers with lower-case names, so
// tests can see what reached the runner.
func echoHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		k = strings.ToLower(k)
		if strings.HasPrefix(k, "x-") {
			out[k] = strings.Join(v, ", ")
		}
	}
	return out
}
