package postgres

// SessionSafe exposes sessionSafe to the external tests.
var SessionSafe = sessionSafe

// PlanPreview exposes planPreview to the external tests.
func PlanPreview(stmt string, serverMajor int) (text, image string, read bool, err error) {
	p, err := planPreview(stmt, serverMajor)
	return p.text, p.image, p.read, err
}
