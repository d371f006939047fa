package mask_test

import (
	"fmt"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/policy/mask"
)

func ExampleMasker_MaskResult() {
	m, err := mask.New(mask.Config{
		HashKey: []byte("an-example-hash-key-of-32-bytes!"),
		Rules:   map[string]string{"rows.#.ssn": mask.ActionRedact},
	}, nil)
	if err != nil {
		panic(err)
	}
	tool := &broker.Tool{Name: "customers", Target: "db", Mask: map[string]string{
		"rows.#.card_number": mask.ActionLast4,
		"rows.#.email":       mask.ActionEmail,
		"rows.#.internal":    mask.ActionDrop,
	}}
	doc := `{"rows":[{"id":1,"email":"jane@example.com","card_number":"4242424242424242","ssn":"123-45-6789","internal":{"risk":3},"notes":"old card 4111 1111 1111 1111"}]}`
	out, stats, err := m.MaskResult(tool, []byte(doc))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
	fmt.Println(stats["rule:rows.#.card_number"], stats["detector:card"])
	// Output:
	// {"rows":[{"id":1,"email":"j***@example.com","card_number":"************4242","ssn":"[REDACTED]","notes":"old card ************1111"}]}
	// 1 1
}
