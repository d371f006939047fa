package broker

import (
	"context"
	"testing"
)

func TestHasProgress(t *testing.T) {
	if HasProgress(context.Background()) {
		t.Error("a context without a ProgressFunc has progress")
	}
	if HasProgress(WithProgress(context.Background(), nil)) {
		t.Error("WithProgress(nil) counts as progress")
	}
	ctx := WithProgress(context.Background(), func(float64, float64, string) {})
	if !HasProgress(ctx) {
		t.Error("a caller's progress function is not recognised")
	}
}
