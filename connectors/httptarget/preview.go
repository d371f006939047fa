package httptarget

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/toolgate/toolgate/broker"
)

var _ broker.Previewer = (*Connector)(nil)

// Preview sends a tool's declared preview request, which must be a GET
// without a body, exactly as Execute sends any request (the host from the
// target, the path escaped and checked, the target's headers), and returns
// the response body as the sample's one element. The count is unknown
// (RowsAffected -1) and the image is the state before the call; limit does
// not apply (the target's max_response_bytes does). An answer outside 2xx
// is no preview. There is no matched run for HTTP tools: nothing ties the
// approved request to the previewed state.
func (c *Connector) Preview(ctx context.Context, op broker.Operation, limit int) (broker.Preview, error) {
	if op.HTTP == nil {
		return broker.Preview{}, broker.NoPreview(broker.CodeInvalidRequest, "target %s runs HTTP operations only", c.cfg.Name)
	}
	if m := strings.ToUpper(op.HTTP.Method); m != http.MethodGet || op.HTTP.Body != nil {
		return broker.Preview{}, broker.NoPreview(broker.CodePreviewUnavailable, "a preview request must be a GET without a body, which changes nothing; this one is %s", m)
	}
	out, err := c.Execute(ctx, op)
	if err != nil {
		var be *broker.Error
		if errors.As(err, &be) {
			return broker.Preview{}, &broker.Error{Code: be.Code, Message: "no preview available: " + be.Message, Cause: be.Cause}
		}
		return broker.Preview{}, err
	}
	var res struct {
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(out.Value, &res); err != nil {
		return broker.Preview{}, broker.Wrap(broker.CodeInternal, err, "no preview available: the preview response could not be read")
	}
	if res.Status < 200 || res.Status > 299 {
		return broker.Preview{}, broker.NoPreview(broker.CodeTargetError, "the preview request to target %s answered HTTP %d %s", c.cfg.Name, res.Status, http.StatusText(res.Status))
	}
	sample := make([]byte, 0, len(res.Body)+2)
	sample = append(append(append(sample, '['), res.Body...), ']')
	return broker.Preview{RowsAffected: -1, Sample: sample, Image: broker.ImageBefore}, nil
}
