package queue

// Message attributes of a job event, so the engine (and an operator
// browsing the queue) can route and filter without parsing the body.
const (
	AttrJobID     = "job_id"
	AttrGatewayID = "gateway_id"
	AttrTable     = "table"
)

// JobTicket is the record as the processor read it from ServiceNow. It is
// the engine's contract and therefore a type of its own, independent of how
// the state table stores tickets.
type JobTicket struct {
	Number              string `json:"number"`
	State               string `json:"state"`
	Priority            string `json:"priority,omitempty"`
	ShortDescription    string `json:"short_description"`
	Description         string `json:"description,omitempty"`
	AssignmentGroup     string `json:"assignment_group,omitempty"`
	AssignmentGroupName string `json:"assignment_group_name,omitempty"`
	Environment         string `json:"environment,omitempty"`
	ConfigurationItem   string `json:"configuration_item,omitempty"`
	Active              bool   `json:"active"`
	SysUpdatedOn        string `json:"sys_updated_on"`
	// Change requests only.
	Type      string `json:"type,omitempty"`
	Approval  string `json:"approval,omitempty"`
	StartDate string `json:"start_date,omitempty"`
	EndDate   string `json:"end_date,omitempty"`
	// DescriptionSHA256 and ShortDescriptionSHA256 are set only when the
	// text was longer than its cap (state.MaxDescription,
	// state.MaxShortDescription) and Description or ShortDescription holds
	// its beginning: the SHA-256 (hex) of the full text.
	DescriptionSHA256      string `json:"description_sha256,omitempty"`
	ShortDescriptionSHA256 string `json:"short_description_sha256,omitempty"`
}
