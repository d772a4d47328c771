package snowsim

import (
	"encoding/json"
	"time"
)

// Sys_ids of the demo fixture's assignment groups, stable so that demo
// gateways and docs can refer to them.
const (
	DemoGroupNetwork     = "287ebd7da9fe198100f92cc8d1d2154e"
	DemoGroupDatabase    = "287ee6fea9fe198100ada7950d0b1b73"
	DemoGroupServiceDesk = "d625dccec0a8016700a222a0f7900d06"
)

// DemoCIs are the configuration items of the demo fixture, by name.
var DemoCIs = []string{
	"sw-core-01", "sw-core-02", "fw-edge-02", "rtr-07", "lb-web-01", "lb-legacy-01",
	"orders-db-01", "orders-db-02", "stg-db-01",
}

// DemoCI returns the sys_id of the demo configuration item with that name
// (a stable value for any name, so writes can give cmdb_ci the sys_id a
// real instance needs).
func DemoCI(name string) string { return stableID("ci:" + name) }

// DemoFixture returns a fixture for Seed with the groups "Network",
// "Database" and "Service Desk", the configuration items DemoCIs, a
// handful of incidents across groups and
// environments, and change requests: approved and scheduled (one window
// open now, one starting in an hour), one awaiting approval and one closed.
// Change windows are relative to the current time.
func DemoFixture() []byte { return DemoFixtureAt(time.Now()) }

// DemoFixtureAt is DemoFixture with change windows relative to now.
func DemoFixtureAt(now time.Time) []byte {
	at := func(d time.Duration) string { return formatTime(now.Add(d)) }
	var cis []map[string]string
	for _, name := range DemoCIs {
		cis = append(cis, map[string]string{"sys_id": DemoCI(name), "name": name})
	}
	fx := map[string][]map[string]string{
		TableCI: cis,
		TableUserGroup: {
			{"sys_id": DemoGroupNetwork, "name": "Network", "description": "Routers, switches, firewalls"},
			{"sys_id": DemoGroupDatabase, "name": "Database", "description": "Database administration"},
			{"sys_id": DemoGroupServiceDesk, "name": "Service Desk", "description": "First line support"},
		},
		TableIncident: {
			{"short_description": "Core switch sw-core-01 unreachable", "description": "Monitoring lost sw-core-01 in DC1.",
				"priority": "1", "impact": "1", "urgency": "1", "state": "2", "assignment_group": DemoGroupNetwork,
				"cmdb_ci": DemoCI("sw-core-01"), "u_environment": "production", "category": "network"},
			{"short_description": "VPN tunnel to branch office flapping", "priority": "3", "impact": "2", "urgency": "2",
				"state": "1", "assignment_group": DemoGroupNetwork, "cmdb_ci": DemoCI("fw-edge-02"), "u_environment": "production",
				"category": "network"},
			{"short_description": "Replication lag on orders-db replica", "priority": "2", "impact": "2", "urgency": "1",
				"state": "2", "assignment_group": DemoGroupDatabase, "cmdb_ci": DemoCI("orders-db-02"), "u_environment": "production",
				"category": "database"},
			{"short_description": "Staging database disk 85% full", "priority": "4", "impact": "3", "urgency": "3",
				"state": "1", "assignment_group": DemoGroupDatabase, "cmdb_ci": DemoCI("stg-db-01"), "u_environment": "staging",
				"category": "database"},
			{"short_description": "Password reset for new starter", "priority": "5", "state": "1",
				"assignment_group": DemoGroupServiceDesk, "category": "inquiry"},
			{"short_description": "Printer on floor 3 jammed", "priority": "5", "state": "7", "active": "false",
				"assignment_group": DemoGroupServiceDesk, "category": "hardware"},
		},
		TableChangeRequest: {
			{"short_description": "Upgrade firmware on sw-core-02", "type": "normal", "approval": "approved", "state": "-1",
				"assignment_group": DemoGroupNetwork, "cmdb_ci": DemoCI("sw-core-02"), "u_environment": "production",
				"start_date": at(-30 * time.Minute), "end_date": at(90 * time.Minute)},
			{"short_description": "Add index on orders.created_at", "type": "standard", "approval": "approved", "state": "-2",
				"assignment_group": DemoGroupDatabase, "cmdb_ci": DemoCI("orders-db-01"), "u_environment": "production",
				"start_date": at(time.Hour), "end_date": at(3 * time.Hour)},
			{"short_description": "Decommission legacy load balancer", "type": "normal", "approval": "requested", "state": "-4",
				"assignment_group": DemoGroupNetwork, "cmdb_ci": DemoCI("lb-legacy-01"), "u_environment": "production",
				"start_date": at(48 * time.Hour), "end_date": at(50 * time.Hour)},
			{"short_description": "Rotate staging database credentials", "type": "standard", "approval": "approved", "state": "3",
				"active": "false", "assignment_group": DemoGroupDatabase, "u_environment": "staging",
				"start_date": at(-48 * time.Hour), "end_date": at(-47 * time.Hour)},
		},
	}
	b, _ := json.Marshal(fx) // a map of strings always marshals
	return b
}
