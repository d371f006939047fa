package pgwire

import "testing"

// TestTaintsAndBarriers ties the classifier's command names to the client
// relay's rules: SQL that creates or drops statements or portals taints
// the tracker, and what may change session settings is a barrier. A
// renamed command must fail here, not silently weaken either rule.
func TestTaintsAndBarriers(t *testing.T) {
	for _, sql := range []string{"PREPARE p AS SELECT 1", "DEALLOCATE p", "DEALLOCATE ALL", "DISCARD ALL", "DECLARE c CURSOR FOR SELECT 1",
		"CLOSE c", "CLOSE ALL", "DO $$BEGIN END$$", "CALL p()"} {
		st := Classify(sql)
		if !taints(st...) || !barrier(st...) {
			t.Errorf("%s (command %q): taints %v, barrier %v", sql, st[0].Command, taints(st...), barrier(st...))
		}
	}
	for _, sql := range []string{"SET client_encoding = 'SJIS'", "RESET ALL", "SET standard_conforming_strings = off", "SELECT set_config('a', 'b', false)"} {
		if st := Classify(sql); !barrier(st...) {
			t.Errorf("%s (command %q) is not a barrier", sql, st[0].Command)
		}
	}
	for _, sql := range []string{"SELECT 1", "BEGIN", "COMMIT", "SHOW client_encoding", "UPDATE t SET a = 1"} {
		if st := Classify(sql); taints(st...) || barrier(st...) {
			t.Errorf("%s (command %q) taints or is a barrier", sql, st[0].Command)
		}
	}
	if !copiesIn(Classify("COPY t FROM STDIN")) || copiesIn(Classify("COPY t TO STDOUT")) {
		t.Error("COPY FROM STDIN is not recognized")
	}
}
