package registration

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// Group is a sys_user_group record.
type Group struct{ SysID, Name string }

// Directory is what registration reads of a gateway's instance to resolve
// its filters: Business Rule conditions compare strings case-sensitively,
// so a gateway's group filter is stored as sys_ids, resolved from the
// names typed, and a filter field the instance lacks is refused.
type Directory interface {
	// Groups returns, in one query, the sys_user_group records whose name
	// or sys_id is one of keys, and those whose name starts as one of keys
	// does (near misses, to suggest). The instance may compare names
	// case-insensitively: the caller compares exactly.
	Groups(ctx context.Context, keys []string) ([]Group, error)
	// TablesWithField returns which of tables have field, as sys_dictionary
	// lists them (a field of a parent table such as task is listed under
	// the parent only).
	TablesWithField(ctx context.Context, field string, tables ...string) ([]string, error)
}

// Connect opens the Directory of the instance at instanceURL with the
// credentials being registered.
type Connect func(ctx context.Context, instanceURL string, creds registry.Credentials) (Directory, error)

// WithDirectory makes gateway create and update resolve the assignment
// group filter and the escalation group to sys_ids and check the
// environment field, through connect. Without it, an operation with
// filters to resolve is refused unless it skips instance checks.
func WithDirectory(connect Connect) Option { return func(s *Service) { s.connect = connect } }

// Querier is what InstanceDirectory needs of a ServiceNow client.
type Querier interface {
	Query(ctx context.Context, table string, q servicenow.Query, page func([]servicenow.Record) error) (servicenow.QueryStats, error)
}

var _ Querier = (*servicenow.Client)(nil)

// ConnectInstance is the Connect of a real instance: a ServiceNow client
// built from the credentials, as the functions build theirs, with opts.
func ConnectInstance(opts ...servicenow.Option) Connect {
	return func(_ context.Context, instanceURL string, creds registry.Credentials) (Directory, error) {
		auth, err := servicenow.AuthFromCredentials(creds)
		if err != nil {
			return nil, err
		}
		c, err := servicenow.New(instanceURL, auth, opts...)
		if err != nil {
			return nil, err
		}
		return InstanceDirectory(c), nil
	}
}

// InstanceDirectory reads sys_user_group and sys_dictionary through q.
func InstanceDirectory(q Querier) Directory { return instanceDirectory{q} }

type instanceDirectory struct{ q Querier }

const (
	tableGroup      = "sys_user_group"
	tableDictionary = "sys_dictionary"
	// nearPrefix is how many leading characters a near miss shares with
	// the name typed.
	nearPrefix = 3
)

func (d instanceDirectory) Groups(ctx context.Context, keys []string) ([]Group, error) {
	var ids []string
	terms := []string{"nameIN" + strings.Join(keys, ",")}
	for _, k := range keys {
		if sysIDPattern.MatchString(k) {
			ids = append(ids, k)
		}
		if utf8.RuneCountInString(k) >= nearPrefix {
			terms = append(terms, "ORnameSTARTSWITH"+string([]rune(k)[:nearPrefix]))
		}
	}
	if len(ids) > 0 {
		terms = append(terms, "ORsys_idIN"+strings.Join(ids, ","))
	}
	var out []Group
	_, err := d.q.Query(ctx, tableGroup, servicenow.Query{
		Encoded: strings.Join(terms, "^") + "^ORDERBYsys_id", Fields: []string{"sys_id", "name"}, PageSize: 500,
	}, func(recs []servicenow.Record) error {
		for _, r := range recs {
			out = append(out, Group{SysID: r.SysID(), Name: r["name"]})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tableGroup, err)
	}
	return out, nil
}

func (d instanceDirectory) TablesWithField(ctx context.Context, field string, tables ...string) ([]string, error) {
	var out []string
	_, err := d.q.Query(ctx, tableDictionary, servicenow.Query{
		Encoded: "nameIN" + strings.Join(tables, ",") + "^element=" + field, Fields: []string{"name", "element"}, PageSize: 100,
	}, func(recs []servicenow.Record) error {
		for _, r := range recs {
			// The instance may match case-insensitively; field names are
			// lower case.
			if r["element"] == field && slices.Contains(tables, r["name"]) && !slices.Contains(out, r["name"]) {
				out = append(out, r["name"])
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tableDictionary, err)
	}
	return out, nil
}

var sysIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Flags whose values are resolved on the instance.
const (
	flagGroups      = "--assignment-group-filter"
	flagEscalation  = "--escalation-group"
	flagEnvironment = "--environment-filter"
)

// filters are what a gateway's filters resolve to.
type filters struct {
	groupIDs     []string
	escalationID string
}

// offline is the hint of an error reaching the instance.
const offline = "; to register without the instance, pass --skip-instance-checks (filters are then stored as typed and matched by name)"

// resolve resolves the groups typed (filter and escalation) to sys_ids and
// checks that the tables have the environment field, with one query each.
func (s *Service) resolve(ctx context.Context, instanceURL string, creds registry.Credentials, groups []string, escalation string, envs []string) (filters, error) {
	if len(groups) == 0 && escalation == "" && len(envs) == 0 {
		return filters{}, nil
	}
	for _, g := range append(slices.Clone(groups), escalation) {
		if strings.Contains(g, "^") {
			flag := flagGroups
			if g == escalation {
				flag = flagEscalation
			}
			return filters{}, invalid(flag, "%s: %q: a group name cannot contain ^", flag, g)
		}
	}
	if s.connect == nil {
		return filters{}, errors.New("the filters cannot be checked against the instance: no instance directory is configured" + offline)
	}
	dir, err := s.connect(ctx, instanceURL, creds)
	if err != nil {
		return filters{}, fmt.Errorf("connect to the instance to check the filters: %w"+offline, err)
	}
	var out filters
	keys := slices.Clone(groups)
	if escalation != "" && !slices.Contains(keys, escalation) {
		keys = append(keys, escalation)
	}
	if len(keys) > 0 {
		found, err := dir.Groups(ctx, keys)
		if err != nil {
			return filters{}, fmt.Errorf("resolve the groups: %w"+offline, err)
		}
		for _, g := range groups {
			id, err := matchGroup(flagGroups, g, found)
			if err != nil {
				return filters{}, err
			}
			if !slices.Contains(out.groupIDs, id) {
				out.groupIDs = append(out.groupIDs, id)
			}
		}
		if escalation != "" {
			if out.escalationID, err = matchGroup(flagEscalation, escalation, found); err != nil {
				return filters{}, err
			}
		}
	}
	if len(envs) > 0 {
		tables, err := dir.TablesWithField(ctx, registry.FieldEnvironment, registry.TableIncident, registry.TableChangeRequest, "task")
		if err != nil {
			return filters{}, fmt.Errorf("check the field %s: %w"+offline, registry.FieldEnvironment, err)
		}
		if !slices.Contains(tables, "task") {
			var missing []string
			for _, t := range registry.EventTypes {
				if !slices.Contains(tables, t) {
					missing = append(missing, t)
				}
			}
			if len(missing) > 0 {
				return filters{}, invalid(flagEnvironment, "%s reads the field %s, which the instance's %s table lacks (sys_dictionary): add it to task (or to %s), or leave %s out",
					flagEnvironment, registry.FieldEnvironment, strings.Join(missing, " and "), strings.Join(missing, " and "), flagEnvironment)
			}
		}
	}
	return out, nil
}

// matchGroup finds the group typed: a name exactly as the instance spells
// it, or the sys_id of an existing group. A near miss is refused with the
// name to type instead.
func matchGroup(flag, typed string, found []Group) (string, error) {
	var exact []Group
	for _, g := range found {
		if g.Name == typed {
			exact = append(exact, g)
		}
	}
	switch len(exact) {
	case 1:
		return exact[0].SysID, nil
	case 0:
	default:
		return "", invalid(flag, "%s: %d groups are named %q: give the sys_id of the one meant", flag, len(exact), typed)
	}
	if sysIDPattern.MatchString(typed) {
		for _, g := range found {
			if g.SysID == typed {
				return typed, nil
			}
		}
	}
	if near := nearest(typed, found); near != "" {
		return "", invalid(flag, "%s: no group is named %q; did you mean %q? (names are compared exactly, case included, as Business Rule conditions compare them)", flag, typed, near)
	}
	return "", invalid(flag, "%s: no group named %q, or with that sys_id, exists on the instance (sys_user_group)", flag, typed)
}

// nearest is the name of found closest to typed: the same but for case, or
// within two edits; "" when none is.
func nearest(typed string, found []Group) string {
	best, bestD := "", 3
	for _, g := range found {
		d := distance(strings.ToLower(typed), strings.ToLower(g.Name))
		if d < bestD || (d == bestD && best != "" && g.Name < best) {
			best, bestD = g.Name, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b, in runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
