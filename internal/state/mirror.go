package state

import (
	"fmt"
	"time"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// Version is a fetched record: its mirror and, for change requests, its
// window.
type Version struct {
	Mirror       Mirror
	SysModCount  int
	SysUpdatedOn string
	// CreatedOn is the record's sys_created_on ("" when not read).
	CreatedOn  string
	Start, End time.Time
}

// VersionOf reads a fetched record (fetched with servicenow.IncidentFields
// or ChangeRequestFields), its mirrored texts cut to their caps (see
// MaxDescription). An error means the record lacks what idempotency needs
// (servicenow.ErrInvalidRecord).
func VersionOf(table string, r servicenow.Record) (Version, error) {
	v, err := versionOf(table, r)
	if err == nil && v.Mirror.Number == "" {
		// Every incident and change request has a number; an answer
		// without one (the field unreadable to the integration user) is
		// no record a job can be about: the job event requires it.
		err = fmt.Errorf("%s record %s without a number", table, r.SysID())
	}
	v.Mirror = v.Mirror.clipped()
	return v, err
}

func versionOf(table string, r servicenow.Record) (Version, error) {
	if table == registry.TableChangeRequest {
		c, err := servicenow.ChangeRequestFrom(r)
		if err != nil {
			return Version{}, err
		}
		return Version{
			Mirror: Mirror{
				Number: c.Number, State: c.State, Priority: c.Priority,
				ShortDescription: c.ShortDescription, Description: c.Description,
				AssignmentGroup: c.AssignmentGroup, AssignmentGroupName: c.AssignmentGroupName,
				Environment: c.Environment, ConfigurationItem: c.ConfigurationItem, Active: c.Active,
				Type: c.Type, Approval: c.Approval, StartDate: c.StartDate.String(), EndDate: c.EndDate.String(),
			},
			SysModCount: c.SysModCount, SysUpdatedOn: c.SysUpdatedOn.String(), CreatedOn: c.SysCreatedOn.String(),
			Start: c.StartDate.Time, End: c.EndDate.Time,
		}, nil
	}
	i, err := servicenow.IncidentFrom(r)
	if err != nil {
		return Version{}, err
	}
	return Version{
		Mirror: Mirror{
			Number: i.Number, State: i.State, Priority: i.Priority,
			ShortDescription: i.ShortDescription, Description: i.Description,
			AssignmentGroup: i.AssignmentGroup, AssignmentGroupName: i.AssignmentGroupName,
			Environment: i.Environment, ConfigurationItem: i.ConfigurationItem, Active: i.Active,
		},
		SysModCount: i.SysModCount, SysUpdatedOn: i.SysUpdatedOn.String(), CreatedOn: i.SysCreatedOn.String(),
	}, nil
}
