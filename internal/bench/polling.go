package bench

import "time"

// Polling is what a polling-only integration would have given the same
// records: each waits for the next poll of a cycle-long schedule, then
// takes the time it took through the webhook path (a generous stand-in for
// the poll's own query, fetch and dispatch). The schedule's phase relative
// to the records is unknown, so every phase in steps of cycle/phases is
// taken and the latencies over all phases and records summarised.
func Polling(created []time.Time, processing []time.Duration, cycle time.Duration, phases int) (mean, worst time.Duration) {
	if len(created) == 0 || cycle <= 0 || phases <= 0 {
		return 0, 0
	}
	origin := created[0]
	var sum float64
	for k := range phases {
		phase := cycle * time.Duration(k) / time.Duration(phases)
		for i, t := range created {
			// Time from the record to the next tick at origin+phase+m·cycle.
			wait := (phase - t.Sub(origin)) % cycle
			if wait < 0 {
				wait += cycle
			}
			l := wait
			if i < len(processing) {
				l += processing[i]
			}
			sum += float64(l)
			worst = max(worst, l)
		}
	}
	return time.Duration(sum / float64(phases*len(created))), worst
}
