package localrun

import (
	"log/slog"
	"net/http"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// SimHandler serves sim's Table API with make dev's admin endpoints
// (POST /sim/outbound, POST /sim/business_rules; see simHandler), for
// programs that run a simulator of their own, such as the end-to-end suite,
// which must set faults that make dev does not expose.
func SimHandler(sim *snowsim.Sim, log *slog.Logger) http.Handler { return simHandler(sim, log) }
