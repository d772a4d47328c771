package registry

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/budget"
)

func TestBudgetSettings(t *testing.T) {
	tests := []struct {
		name string
		gw   Gateway
		want budget.Settings // as the budget takes them, defaults applied
	}{
		{"nothing set: the defaults", Gateway{},
			budget.Settings{RatePerHour: budget.DefaultRatePerHour, Burst: budget.DefaultBurst, MaxConcurrency: budget.DefaultMaxConcurrency}},
		{"a large rate keeps the default burst", Gateway{RateLimitPerHour: 36000},
			budget.Settings{RatePerHour: 36000, Burst: budget.DefaultBurst, MaxConcurrency: budget.DefaultMaxConcurrency}},
		{"a small rate gets a tenth of it as burst", Gateway{RateLimitPerHour: 120, MaxConcurrency: 1},
			budget.Settings{RatePerHour: 120, Burst: 12, MaxConcurrency: 1}},
		{"a tiny rate still has a burst of one", Gateway{RateLimitPerHour: 5},
			budget.Settings{RatePerHour: 5, Burst: 1, MaxConcurrency: budget.DefaultMaxConcurrency}},
		{"concurrency alone", Gateway{MaxConcurrency: 8},
			budget.Settings{RatePerHour: budget.DefaultRatePerHour, Burst: budget.DefaultBurst, MaxConcurrency: 8}},
		{"negative values, written by hand, are the defaults", Gateway{RateLimitPerHour: -1, MaxConcurrency: -3},
			budget.Settings{RatePerHour: budget.DefaultRatePerHour, Burst: budget.DefaultBurst, MaxConcurrency: budget.DefaultMaxConcurrency}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.gw.BudgetSettings().WithDefaults()); diff != "" {
				t.Errorf("BudgetSettings().WithDefaults() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBudgetSettingsLeaveDefaultsToTheBudget(t *testing.T) {
	// A gateway that sets nothing passes zeros, so a change of the
	// package's defaults reaches it without a registry write.
	if got := (Gateway{}).BudgetSettings(); got != (budget.Settings{}) {
		t.Errorf("BudgetSettings() of a gateway that sets nothing = %+v, want the zero Settings", got)
	}
}
