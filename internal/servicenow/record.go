package servicenow

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/snowgate/snowgate/internal/registry"
)

// Record is one Table API record as raw field values. The client always asks
// for sysparm_display_value=false and sysparm_exclude_reference_link=true,
// so every value, references included, is a plain string (a reference is
// the referenced record's sys_id; a dot-walked field such as
// "assignment_group.name" carries the referenced value).
type Record map[string]string

// ErrInvalidRecord is returned when a record lacks a field a typed view
// needs or holds a value of the wrong shape. Fetching it again will not
// help.
var ErrInvalidRecord = errors.New("invalid servicenow record")

// Field names of the task tables snowgate mirrors.
const (
	FieldSysID               = "sys_id"
	FieldNumber              = "number"
	FieldState               = "state"
	FieldPriority            = "priority"
	FieldShortDescription    = "short_description"
	FieldDescription         = "description"
	FieldAssignmentGroup     = "assignment_group"
	FieldAssignmentGroupName = registry.FieldAssignmentGroupName
	FieldEnvironment         = registry.FieldEnvironment
	FieldConfigurationItem   = "cmdb_ci"
	FieldActive              = "active"
	FieldSysModCount         = "sys_mod_count"
	FieldSysUpdatedOn        = "sys_updated_on"
	FieldWorkNotes           = "work_notes"
	FieldType                = "type"
	FieldApproval            = "approval"
	FieldStartDate           = "start_date"
	FieldEndDate             = "end_date"
)

// IncidentFields are the fields IncidentFrom reads: pass them as
// sysparm_fields so a fetch transfers only what is mirrored.
var IncidentFields = []string{
	FieldSysID, FieldNumber, FieldState, FieldPriority, FieldShortDescription,
	FieldDescription, FieldAssignmentGroup, FieldAssignmentGroupName,
	FieldEnvironment, FieldConfigurationItem, FieldActive, FieldSysModCount,
	FieldSysUpdatedOn, FieldSysCreatedOn,
}

// ChangeRequestFields are the fields ChangeRequestFrom reads.
var ChangeRequestFields = append(append([]string(nil), IncidentFields...),
	FieldType, FieldApproval, FieldStartDate, FieldEndDate)

// SysID returns the record's sys_id ("" when absent).
func (r Record) SysID() string { return r[FieldSysID] }

// SysModCount returns the record's update counter, which increases by one
// on every update of the record.
func (r Record) SysModCount() (int, error) {
	v, ok := r[FieldSysModCount]
	if !ok {
		return 0, fmt.Errorf("%w: no %s", ErrInvalidRecord, FieldSysModCount)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s %q is not a count", ErrInvalidRecord, FieldSysModCount, v)
	}
	return n, nil
}

// SysUpdatedOn returns the time of the record's last update.
func (r Record) SysUpdatedOn() (Time, error) {
	v, ok := r[FieldSysUpdatedOn]
	if !ok || v == "" {
		return Time{}, fmt.Errorf("%w: no %s", ErrInvalidRecord, FieldSysUpdatedOn)
	}
	return r.time(FieldSysUpdatedOn)
}

func (r Record) time(field string) (Time, error) {
	t, err := ParseTime(r[field])
	if err != nil {
		return Time{}, fmt.Errorf("%w: %s: %w", ErrInvalidRecord, field, err)
	}
	return t, nil
}

func (r Record) bool(field string) (bool, error) {
	switch v := r[field]; v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return false, fmt.Errorf("%w: %s %q is not a boolean", ErrInvalidRecord, field, v)
	}
}

// Incident is the typed view of an incident record with the fields snowgate
// mirrors. State and Priority keep ServiceNow's choice values ("1", "2", …).
type Incident struct {
	SysID               string `json:"sys_id"`
	Number              string `json:"number"`
	State               string `json:"state"`
	Priority            string `json:"priority"`
	ShortDescription    string `json:"short_description"`
	Description         string `json:"description"`
	AssignmentGroup     string `json:"assignment_group"` // sys_id of the group
	AssignmentGroupName string `json:"assignment_group_name"`
	Environment         string `json:"environment"`
	ConfigurationItem   string `json:"configuration_item"` // sys_id of the CI
	Active              bool   `json:"active"`
	SysModCount         int    `json:"sys_mod_count"`
	SysUpdatedOn        Time   `json:"sys_updated_on"`
	// SysCreatedOn is zero when the record was read without it.
	SysCreatedOn Time `json:"sys_created_on"`
}

// IncidentFrom reads an incident from a record fetched with IncidentFields.
// sys_id, active, sys_mod_count and sys_updated_on are required, since
// idempotency and scope depend on them; the text fields may be empty.
func IncidentFrom(r Record) (Incident, error) { return taskFrom(r, "incident") }

// taskFrom reads the fields incidents and change requests share; kind names
// the table in errors.
func taskFrom(r Record, kind string) (Incident, error) {
	inc := Incident{
		SysID:               r[FieldSysID],
		Number:              r[FieldNumber],
		State:               r[FieldState],
		Priority:            r[FieldPriority],
		ShortDescription:    r[FieldShortDescription],
		Description:         r[FieldDescription],
		AssignmentGroup:     r[FieldAssignmentGroup],
		AssignmentGroupName: r[FieldAssignmentGroupName],
		Environment:         r[FieldEnvironment],
		ConfigurationItem:   r[FieldConfigurationItem],
	}
	if inc.SysID == "" {
		return Incident{}, fmt.Errorf("%s: %w: no %s", kind, ErrInvalidRecord, FieldSysID)
	}
	var err error
	if inc.Active, err = r.bool(FieldActive); err != nil {
		return Incident{}, fmt.Errorf("%s %s: %w", kind, inc.SysID, err)
	}
	if inc.SysModCount, err = r.SysModCount(); err != nil {
		return Incident{}, fmt.Errorf("%s %s: %w", kind, inc.SysID, err)
	}
	if inc.SysUpdatedOn, err = r.SysUpdatedOn(); err != nil {
		return Incident{}, fmt.Errorf("%s %s: %w", kind, inc.SysID, err)
	}
	// Only dedup's order reads it: an unreadable one is no reason to
	// refuse the record.
	inc.SysCreatedOn, _ = ParseTime(r[FieldSysCreatedOn])
	return inc, nil
}

// ChangeRequest is the typed view of a change_request record. Type is
// "normal", "standard" or "emergency"; Approval is "requested", "approved",
// "rejected" or "not requested". StartDate and EndDate are zero when unset.
type ChangeRequest struct {
	SysID               string `json:"sys_id"`
	Number              string `json:"number"`
	State               string `json:"state"`
	Priority            string `json:"priority"`
	ShortDescription    string `json:"short_description"`
	Description         string `json:"description"`
	AssignmentGroup     string `json:"assignment_group"`
	AssignmentGroupName string `json:"assignment_group_name"`
	Environment         string `json:"environment"`
	ConfigurationItem   string `json:"configuration_item"`
	Active              bool   `json:"active"`
	SysModCount         int    `json:"sys_mod_count"`
	SysUpdatedOn        Time   `json:"sys_updated_on"`
	SysCreatedOn        Time   `json:"sys_created_on"`
	Type                string `json:"type"`
	Approval            string `json:"approval"`
	StartDate           Time   `json:"start_date"`
	EndDate             Time   `json:"end_date"`
}

// ChangeRequestFrom reads a change request from a record fetched with
// ChangeRequestFields.
func ChangeRequestFrom(r Record) (ChangeRequest, error) {
	inc, err := taskFrom(r, "change request")
	if err != nil {
		return ChangeRequest{}, err
	}
	cr := ChangeRequest{
		SysID:               inc.SysID,
		Number:              inc.Number,
		State:               inc.State,
		Priority:            inc.Priority,
		ShortDescription:    inc.ShortDescription,
		Description:         inc.Description,
		AssignmentGroup:     inc.AssignmentGroup,
		AssignmentGroupName: inc.AssignmentGroupName,
		Environment:         inc.Environment,
		ConfigurationItem:   inc.ConfigurationItem,
		Active:              inc.Active,
		SysModCount:         inc.SysModCount,
		SysUpdatedOn:        inc.SysUpdatedOn,
		SysCreatedOn:        inc.SysCreatedOn,
		Type:                r[FieldType],
		Approval:            r[FieldApproval],
	}
	if cr.StartDate, err = r.time(FieldStartDate); err != nil {
		return ChangeRequest{}, fmt.Errorf("change request %s: %w", cr.SysID, err)
	}
	if cr.EndDate, err = r.time(FieldEndDate); err != nil {
		return ChangeRequest{}, fmt.Errorf("change request %s: %w", cr.SysID, err)
	}
	return cr, nil
}
