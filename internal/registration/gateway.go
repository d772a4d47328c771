package registration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
)

// GatewayInput is a gateway to create. Password and ClientSecret are the
// secret values themselves; they go to Secrets Manager, never to the table.
type GatewayInput struct {
	Name         string
	Description  string
	InstanceURL  string // https, or http on loopback
	Auth         string // registry.AuthBasic, AuthOAuthClientCredentials or AuthOAuthPassword
	Username     string
	Password     string
	ClientID     string
	ClientSecret string
	// AssignmentGroupFilter and EnvironmentFilter are comma-separated lists;
	// empty means any.
	AssignmentGroupFilter string
	EnvironmentFilter     string
	// DedupWindowMinutes: -1 disables deduplication
	// (registry.DefaultDedupWindowMinutes is the usual value).
	DedupWindowMinutes int
	EscalationGroup    string
	WriteBack          bool
	Active             bool
	// SkipInstanceChecks registers without reaching the instance: the
	// group filter and escalation group are stored as typed, unresolved,
	// and the environment field is not checked.
	SkipInstanceChecks bool
	// AllowCustomHost allows an InstanceURL whose host is neither a
	// ServiceNow instance's nor loopback (servicenow.CustomHost): a proxy
	// or a custom domain, trusted with the gateway's credentials.
	AllowCustomHost bool

	// The job lifecycle settings, as registry.Gateway names them. Empty
	// takes the default (registry.Gateway's accessors say which), so a
	// caller that knows nothing of them gets the documented behaviour.
	Org, Mode, Mention, OnSuccess, OnFailure, ResolveCloseCode string
	// DedupNoteOff turns off the work note naming a deduplicated
	// incident's primary (on by default).
	DedupNoteOff bool

	// RateLimitPerHour and MaxConcurrency are the gateway's ServiceNow
	// budget: requests an hour (ParseRateLimit reads --rate-limit N/h) and
	// requests at once. 0 takes the budget's default.
	RateLimitPerHour, MaxConcurrency int
}

func (in GatewayInput) credentials() credentialFields {
	return credentialFields{username: in.Username, password: in.Password, clientID: in.ClientID, clientSecret: in.ClientSecret}
}

// GatewayChanges are the changes to a gateway: only the fields that are not
// nil change.
type GatewayChanges struct {
	Name, Description, InstanceURL *string
	// AllowCustomHost (see GatewayInput) turns the permission on or off;
	// an instance URL on a custom host needs it on.
	AllowCustomHost *bool
	// Changing Auth needs the new mode's secrets; Username, ClientID,
	// Password and ClientSecret update the stored credentials.
	Auth, Username, ClientID, Password, ClientSecret *string
	AssignmentGroupFilter, EnvironmentFilter         *string
	DedupWindowMinutes                               *int
	EscalationGroup                                  *string
	WriteBack, Active                                *bool
	// The job lifecycle settings (see GatewayInput); given, Mode, Mention,
	// OnSuccess, OnFailure and ResolveCloseCode cannot be empty, Org can
	// (no organisation).
	Org, Mode, Mention, OnSuccess, OnFailure, ResolveCloseCode *string
	DedupNoteOff                                               *bool
	// The ServiceNow budget (see GatewayInput); 0 goes back to the
	// budget's default.
	RateLimitPerHour, MaxConcurrency *int
	// SkipInstanceChecks changes the filters without reaching the
	// instance, as for GatewayInput; it changes nothing by itself.
	SkipInstanceChecks bool
}

// DeletedGateway is what DeleteGateway removed.
type DeletedGateway struct {
	Gateway  registry.Gateway
	Webhooks []registry.Webhook // with force, the gateway's webhooks
}

// CreateGateway validates in, stores its credentials, with the instance
// they are for, in a new secret named for the gateway, then the gateway. When the table write fails, the secret
// is deleted again.
func (s *Service) CreateGateway(ctx context.Context, in GatewayInput) (registry.Gateway, error) {
	instance, err := in.validate()
	if err != nil {
		return registry.Gateway{}, err
	}
	id := "gtw_" + uuid.NewString()
	creds := registry.Credentials{Auth: in.Auth, Username: in.Username, Password: in.Password, ClientID: in.ClientID, ClientSecret: in.ClientSecret,
		InstanceURL: instance}
	doc, err := json.Marshal(creds)
	if err != nil {
		return registry.Gateway{}, fmt.Errorf("encode credentials: %w", err)
	}
	var res filters
	if !in.SkipInstanceChecks {
		if res, err = s.resolve(ctx, instance, creds, splitNames(in.AssignmentGroupFilter), strings.TrimSpace(in.EscalationGroup), splitNames(in.EnvironmentFilter)); err != nil {
			return registry.Gateway{}, err
		}
	}
	arn, err := s.sec.Create(ctx, schema.GatewaySecretName(s.prefix, id), string(doc), "snowgate ServiceNow credentials of gateway "+id)
	if err != nil {
		return registry.Gateway{}, err
	}
	g, err := s.reg.CreateGateway(ctx, registry.Gateway{
		ID: id, Name: in.Name, Type: registry.SourceServiceNow, Description: in.Description,
		Active: in.Active, InstanceURL: instance, AllowCustomHost: in.AllowCustomHost, Auth: in.Auth, Username: in.Username, ClientID: in.ClientID,
		CredentialsSecretARN: arn, AssignmentGroupFilter: in.AssignmentGroupFilter, AssignmentGroupIDs: res.groupIDs,
		EnvironmentFilter: in.EnvironmentFilter, DedupWindowMinutes: in.DedupWindowMinutes,
		EscalationGroup: in.EscalationGroup, EscalationGroupID: res.escalationID, WriteBack: in.WriteBack,
		Org: in.Org, Mode: in.Mode, Mention: in.Mention, OnSuccess: in.OnSuccess, OnFailure: in.OnFailure,
		ResolveCloseCode: in.ResolveCloseCode, DedupNoteOff: in.DedupNoteOff,
		RateLimitPerHour: in.RateLimitPerHour, MaxConcurrency: in.MaxConcurrency,
	})
	if err != nil {
		return registry.Gateway{}, s.undoCreate(ctx, err, arn)
	}
	return g, nil
}

// CheckGatewayUpdate reads the gateway and checks the changes against it, as
// UpdateGateway does, without writing anything: a caller that reads secrets
// from a terminal checks before prompting for them (with stand-ins, as for
// GatewayChanges.Validate).
func (s *Service) CheckGatewayUpdate(ctx context.Context, id string, c GatewayChanges) error {
	if err := CheckGatewayID("--id", id); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	cur, err := s.reg.Gateway(ctx, id)
	if err != nil {
		return err
	}
	if err := c.checkHost(cur); err != nil {
		return err
	}
	if c.credentialsChange() {
		_, err := plannedCredentials(cur, c)
		return err
	}
	return nil
}

// UpdateGateway applies the changes to a gateway. Changed credentials, or a
// changed instance URL (which the secret names, see
// registry.Credentials), are written to the gateway's secret first; when
// the table write then fails, the previous secret value is put back. A gateway whose secret is named
// for it under another prefix (made before the stack's own prefix, see
// schema.SecretPrefix) has its credentials moved by any update: a new
// secret under the current prefix, pointed at in the same table write
// (discarded when that fails), then the old one deleted with its recovery
// window (a *LeftoverSecretsError, with the updated gateway, when that
// fails). Changing Active rewrites the path
// items of all the gateway's webhooks in the same transaction, so ingest
// stops (or resumes) accepting their calls at once. It returns the gateway
// as stored and as it was before.
func (s *Service) UpdateGateway(ctx context.Context, id string, c GatewayChanges) (updated, before registry.Gateway, err error) {
	if err := CheckGatewayID("--id", id); err != nil {
		return registry.Gateway{}, registry.Gateway{}, err
	}
	if err := c.Validate(); err != nil {
		return registry.Gateway{}, registry.Gateway{}, err
	}
	cur, err := s.reg.Gateway(ctx, id)
	if err != nil {
		return registry.Gateway{}, registry.Gateway{}, err
	}
	if err := c.checkHost(cur); err != nil {
		return registry.Gateway{}, registry.Gateway{}, err
	}
	instance := ""
	if c.InstanceURL != nil {
		instance, _ = CheckInstanceURL(*c.InstanceURL) // validated above
	}
	var restore func() error
	var plan credentialPlan
	var newSecret, oldSecret string
	var creds registry.Credentials
	// The secret is written again when the credentials change and when
	// the instance does: it names the instance its credentials are for.
	secretChange := c.credentialsChange() || c.InstanceURL != nil
	switch {
	case c.credentialsChange():
		if plan, err = plannedCredentials(cur, c); err != nil {
			return registry.Gateway{}, registry.Gateway{}, err
		}
		if oldSecret, creds, err = s.plannedSecret(ctx, cur, c, plan); err != nil {
			return registry.Gateway{}, registry.Gateway{}, err
		}
	case secretChange:
		if oldSecret, creds, err = s.ownCredentials(ctx, cur); err != nil {
			return registry.Gateway{}, registry.Gateway{}, err
		}
	}
	// The filters as they will be, resolved on the instance as it will be
	// when any of them (or the instance) changes.
	after := cur
	if c.InstanceURL != nil {
		after.InstanceURL = instance
	}
	creds.InstanceURL = after.InstanceURL
	set(&after.AssignmentGroupFilter, c.AssignmentGroupFilter)
	set(&after.EnvironmentFilter, c.EnvironmentFilter)
	set(&after.EscalationGroup, c.EscalationGroup)
	filtersChange := c.InstanceURL != nil || c.AssignmentGroupFilter != nil || c.EnvironmentFilter != nil || c.EscalationGroup != nil
	var res filters
	resolved := false
	if filtersChange && !c.SkipInstanceChecks {
		resolved = true
		groups, escalation, envs := splitNames(after.AssignmentGroupFilter), strings.TrimSpace(after.EscalationGroup), splitNames(after.EnvironmentFilter)
		if len(groups) > 0 || escalation != "" || len(envs) > 0 {
			if !secretChange {
				if creds, err = s.storedCredentials(ctx, cur); err != nil {
					return registry.Gateway{}, registry.Gateway{}, err
				}
			}
			if res, err = s.resolve(ctx, after.InstanceURL, creds, groups, escalation, envs); err != nil {
				return registry.Gateway{}, registry.Gateway{}, err
			}
		}
	}
	move := s.moves(cur)
	if secretChange {
		if newSecret, err = encodeCredentials(creds); err != nil {
			return registry.Gateway{}, registry.Gateway{}, err
		}
	} else if move {
		if newSecret, _, err = s.readCredentials(ctx, cur); err != nil {
			return registry.Gateway{}, registry.Gateway{}, err
		}
	}
	var moved string
	switch {
	case move:
		if moved, err = s.sec.Create(ctx, schema.GatewaySecretName(s.prefix, id), newSecret, "snowgate ServiceNow credentials of gateway "+id); err != nil {
			return registry.Gateway{}, registry.Gateway{}, err
		}
	case secretChange:
		if restore, err = s.putCredentials(ctx, cur, oldSecret, newSecret); err != nil {
			return registry.Gateway{}, registry.Gateway{}, err
		}
	}
	g, err := s.reg.UpdateGateway(ctx, id, func(g *registry.Gateway) error {
		set(&g.Name, c.Name)
		set(&g.Description, c.Description)
		if c.InstanceURL != nil {
			g.InstanceURL = instance
		}
		set(&g.AllowCustomHost, c.AllowCustomHost)
		set(&g.AssignmentGroupFilter, c.AssignmentGroupFilter)
		set(&g.EnvironmentFilter, c.EnvironmentFilter)
		set(&g.DedupWindowMinutes, c.DedupWindowMinutes)
		set(&g.EscalationGroup, c.EscalationGroup)
		switch {
		case resolved:
			g.AssignmentGroupIDs, g.EscalationGroupID = res.groupIDs, res.escalationID
		case c.SkipInstanceChecks:
			// Offline, what changed is left to names: sys_ids of other
			// names, or of another instance, would be wrong.
			if c.AssignmentGroupFilter != nil || c.InstanceURL != nil {
				g.AssignmentGroupIDs = nil
			}
			if c.EscalationGroup != nil || c.InstanceURL != nil {
				g.EscalationGroupID = ""
			}
		}
		set(&g.WriteBack, c.WriteBack)
		set(&g.Active, c.Active)
		set(&g.Org, c.Org)
		set(&g.Mode, c.Mode)
		set(&g.Mention, c.Mention)
		set(&g.OnSuccess, c.OnSuccess)
		set(&g.OnFailure, c.OnFailure)
		set(&g.ResolveCloseCode, c.ResolveCloseCode)
		set(&g.DedupNoteOff, c.DedupNoteOff)
		set(&g.RateLimitPerHour, c.RateLimitPerHour)
		set(&g.MaxConcurrency, c.MaxConcurrency)
		if c.credentialsChange() {
			g.Auth, g.Username, g.ClientID = plan.auth, plan.username, plan.clientID
		}
		if moved != "" {
			if g.CredentialsSecretARN != cur.CredentialsSecretARN {
				return fmt.Errorf("gateway %s changed its credentials secret meanwhile", id)
			}
			g.CredentialsSecretARN = moved
		}
		return nil
	})
	if err != nil {
		switch {
		case moved != "":
			err = s.undoCreate(ctx, err, moved)
		case restore != nil:
			err = errors.Join(err, restore())
		}
		return registry.Gateway{}, registry.Gateway{}, err
	}
	if moved != "" {
		return g, cur, s.deleteSecrets(ctx, "gateway "+id+" updated, its credentials moved to "+moved, []string{cur.CredentialsSecretARN})
	}
	return g, cur, nil
}

// moves reports whether an update moves the gateway's credentials: its
// secret is the one named for it, under another prefix than the current.
func (s *Service) moves(g registry.Gateway) bool {
	return schema.IsGatewaySecret(g.CredentialsSecretARN, g.ID) && schema.SecretName(g.CredentialsSecretARN) != schema.GatewaySecretName(s.prefix, g.ID)
}

// SetGatewayActive activates or deactivates a gateway, with the path items
// of its webhooks in the same transaction.
func (s *Service) SetGatewayActive(ctx context.Context, id string, active bool) (registry.Gateway, error) {
	g, _, err := s.UpdateGateway(ctx, id, GatewayChanges{Active: &active})
	return g, err
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// credentialPlan is the gateway's auth mode and credential fields after an
// update.
type credentialPlan struct {
	credentialFields
	auth    string
	newMode bool // the auth mode changes: no stored secret is kept
}

// plannedCredentials works out the auth fields after the changes (fields the
// mode does not use are cleared) and checks that the mode gets what it needs.
func plannedCredentials(cur registry.Gateway, c GatewayChanges) (credentialPlan, error) {
	p := credentialPlan{auth: cur.Auth}
	p.username, p.clientID = cur.Username, cur.ClientID
	set(&p.auth, c.Auth)
	set(&p.username, c.Username)
	set(&p.clientID, c.ClientID)
	if err := checkAuth(p.auth); err != nil {
		return credentialPlan{}, err
	}
	needs := authNeeds[p.auth]
	if !needs.username {
		p.username = ""
	}
	if !needs.clientID {
		p.clientID = ""
	}
	given := credentialFields{username: deref(c.Username), clientID: deref(c.ClientID), password: deref(c.Password), clientSecret: deref(c.ClientSecret)}
	if err := rejectUnused(p.auth, given); err != nil {
		return credentialPlan{}, err
	}
	have := p.credentialFields
	p.newMode = p.auth != cur.Auth
	if p.newMode {
		// A new mode starts from fresh secrets, given now.
		have.password, have.clientSecret = given.password, given.clientSecret
	} else {
		have.password, have.clientSecret = "kept", "kept"
	}
	if err := requireCredentials(p.auth, have); err != nil {
		return credentialPlan{}, err
	}
	return p, nil
}

// plannedSecret reads the gateway's credentials secret and returns it with
// the credentials it will hold after the changes.
func (s *Service) plannedSecret(ctx context.Context, cur registry.Gateway, c GatewayChanges, p credentialPlan) (old string, creds registry.Credentials, err error) {
	old, creds, err = s.ownCredentials(ctx, cur)
	if err != nil {
		return "", registry.Credentials{}, err
	}
	if p.newMode {
		creds = registry.Credentials{}
	}
	creds.Auth, creds.Username, creds.ClientID = p.auth, p.username, p.clientID
	set(&creds.Password, c.Password)
	set(&creds.ClientSecret, c.ClientSecret)
	needs := authNeeds[p.auth]
	if !needs.password {
		creds.Password = ""
	}
	if !needs.clientSecret {
		creds.ClientSecret = ""
	}
	// The stored secret may lack what the mode needs (written by hand).
	if err := requireCredentials(p.auth, credentialFields{username: creds.Username, password: creds.Password, clientID: creds.ClientID, clientSecret: creds.ClientSecret}); err != nil {
		return "", registry.Credentials{}, err
	}
	return old, creds, nil
}

// ownCredentials reads the gateway's credentials secret, to change it: only
// the secret named for the gateway, never another's its item points at.
func (s *Service) ownCredentials(ctx context.Context, cur registry.Gateway) (string, registry.Credentials, error) {
	if !schema.IsGatewaySecret(cur.CredentialsSecretARN, cur.ID) {
		return "", registry.Credentials{}, fmt.Errorf("gateway %s points at credentials secret %q, which is not the one named for it (%s): not changing it",
			cur.ID, cur.CredentialsSecretARN, schema.GatewaySecretName("<prefix>", cur.ID))
	}
	return s.readCredentials(ctx, cur)
}

// storedCredentials are the gateway's credentials as its secret holds them.
func (s *Service) storedCredentials(ctx context.Context, cur registry.Gateway) (registry.Credentials, error) {
	_, creds, err := s.readCredentials(ctx, cur)
	return creds, err
}

func (s *Service) readCredentials(ctx context.Context, cur registry.Gateway) (string, registry.Credentials, error) {
	doc, err := s.sec.Get(ctx, cur.CredentialsSecretARN)
	if err != nil {
		return "", registry.Credentials{}, fmt.Errorf("read the gateway's credentials: %w", err)
	}
	var creds registry.Credentials
	if err := json.Unmarshal([]byte(doc), &creds); err != nil {
		// The decoder's message could quote the secret.
		return "", registry.Credentials{}, errors.New("decode the gateway's credentials secret: not a credentials document")
	}
	return doc, creds, nil
}

func encodeCredentials(creds registry.Credentials) (string, error) {
	doc, err := json.Marshal(creds)
	if err != nil {
		return "", fmt.Errorf("encode credentials: %w", err)
	}
	return string(doc), nil
}

// putCredentials replaces the gateway's credentials secret and returns how
// to put the previous value back.
func (s *Service) putCredentials(ctx context.Context, cur registry.Gateway, old, doc string) (restore func() error, err error) {
	if err := s.sec.Put(ctx, cur.CredentialsSecretARN, doc); err != nil {
		return nil, err
	}
	return func() error {
		if err := s.sec.Put(context.WithoutCancel(ctx), cur.CredentialsSecretARN, old); err != nil {
			return fmt.Errorf("also failed to restore the previous credentials in %s: %w", cur.CredentialsSecretARN, err)
		}
		return nil
	}, nil
}

// splitNames splits a comma-separated list as the registry does.
func splitNames(s string) []string {
	return registry.Gateway{AssignmentGroupFilter: s}.AssignmentGroups()
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// DeleteGateway deletes a gateway, then its credentials secret. While
// webhooks point at it the result is a *GatewayInUseError, unless force is
// set: then its webhooks and their path items go in the same transaction,
// and their HMAC keys after it. Secrets that cannot be deleted are reported
// in a *LeftoverSecretsError returned with the result.
func (s *Service) DeleteGateway(ctx context.Context, id string, force bool) (DeletedGateway, error) {
	if err := CheckGatewayID("--id", id); err != nil {
		return DeletedGateway{}, err
	}
	g, hooks, err := s.reg.DeleteGateway(ctx, id, force)
	if errors.Is(err, registry.ErrGatewayInUse) {
		listed, lerr := s.reg.Webhooks(ctx, id)
		if lerr != nil {
			return DeletedGateway{}, err
		}
		inUse := &GatewayInUseError{GatewayID: id}
		for _, h := range listed {
			inUse.WebhookIDs = append(inUse.WebhookIDs, h.ID)
		}
		return DeletedGateway{}, inUse
	}
	if err != nil {
		return DeletedGateway{}, err
	}
	var arns []string
	// A secret not named for the gateway belongs to someone else (the item
	// was edited by hand): it is not this deletion's to remove.
	if schema.IsGatewaySecret(g.CredentialsSecretARN, g.ID) {
		arns = append(arns, g.CredentialsSecretARN)
	}
	for _, h := range hooks {
		for _, k := range h.SigningKeys {
			arns = append(arns, k.SecretARN)
		}
	}
	return DeletedGateway{Gateway: g, Webhooks: hooks}, s.deleteSecrets(ctx, "gateway "+id+" deleted", arns)
}

// EscalationWarning says what a gateway set to escalate failures does
// without an escalation group: it only adds the work note. It is "" when
// the gateway escalates somewhere, or does not escalate. The setting is
// allowed (a group can be added later), so callers warn, not refuse.
func EscalationWarning(g registry.Gateway) string {
	if g.FailureAction() != registry.OnFailureEscalate || strings.TrimSpace(g.EscalationGroup) != "" {
		return ""
	}
	return "--on-failure " + registry.OnFailureEscalate + " without an escalation group: failed and partial results only get a work note, " +
		"nobody is assigned; set one with --escalation-group (a name exactly as on the instance, or a sys_id)"
}
