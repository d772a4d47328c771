package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/watermark"
)

// Signals from the page callback to the paging loop; never returned.
var (
	errRequery  = errors.New("position moved to a later second: query again from it")
	errDeadline = errors.New("time budget spent")
)

// FilterQuery is the encoded query of the gateway's scope without the
// active condition (see the package comment for why).
func FilterQuery(gw registry.Gateway) string {
	var keep []string
	for _, c := range strings.Split(gw.ScopeQuery(), "^") {
		if c != "" && c != "active=true" {
			keep = append(keep, c)
		}
	}
	return strings.Join(keep, "^")
}

// ChangedQuery is the encoded query for the records of the gateway's scope
// updated at or after from, in the order the watermark follows.
func ChangedQuery(gw registry.Gateway, from time.Time) string {
	q := servicenow.FieldSysUpdatedOn + ">=" + servicenow.NewTime(from).String() +
		"^ORDERBY" + servicenow.FieldSysUpdatedOn + "^ORDERBY" + servicenow.FieldSysID
	if f := FilterQuery(gw); f != "" {
		q = f + "^" + q
	}
	return q
}

// pass is the state of one gateway × table pass.
type pass struct {
	r       *Reconciler
	gw      registry.Gateway
	t       tableSpec
	o       Options
	stopAt  time.Time
	advance bool // whether this pass may move the watermark
	stored  watermark.Position
	// last is the last record handled; records at or before it that a
	// query returns again are skipped without a lookup.
	last    watermark.Position
	hasLast bool
	res     Result
	// sent collects table#sys_id of what the pass enqueued, so the
	// open-job watch of the same run does not enqueue it again.
	sent map[string]bool
}

// table runs one gateway × table pass.
//
// Paging: ServiceNow pages by offset, and an offset is not stable while
// records change: a record updated during paging moves to the end, so every
// record after its old place shifts one place up and one of them would slip
// past a page boundary unread. So after each page whose last record moved
// the position to a later second, the pass queries again from that second
// (keyset paging) instead of following the next link, and skips what it
// has already handled. Only while the position stays within one second
// (more same-second updates than a page holds) does it follow the offset
// links; a shift there is caught by the next run, whose overlap covers
// that second.
func (r *Reconciler) table(ctx context.Context, q Querier, gw registry.Gateway, t tableSpec, o Options, stopAt time.Time, sent map[string]bool) Result {
	started := r.d.Now()
	p := &pass{r: r, gw: gw, t: t, o: o, stopAt: stopAt, sent: sent,
		res: Result{GatewayID: gw.ID, Table: t.name}}
	defer func() { p.res.Duration = r.d.Now().Sub(started) }()

	mark, err := r.d.Watermarks.Get(ctx, gw.ID, t.name)
	if err != nil && !errors.Is(err, watermark.ErrNotFound) {
		p.res.Stopped, p.res.Err = StoppedError, err
		return p.res
	}
	// Where the scheduled run starts: the watermark or, on the first run,
	// the webhook's creation, minus the overlap.
	scheduled := t.createdAt
	if !mark.Position.IsZero() {
		scheduled = mark.Position.UpdatedOn
	}
	scheduled = scheduled.Add(-r.cfg.Overlap)
	from := scheduled
	p.advance = true
	p.stored = mark.Position
	if o.Since > 0 {
		from = started.Add(-o.Since)
		p.advance = !from.After(scheduled)
	}
	p.res.From = servicenow.NewTime(from).Time

	cursor := p.res.From
	for {
		stats, err := q.Query(ctx, t.name, servicenow.Query{
			Encoded:  ChangedQuery(gw, cursor),
			Fields:   Fields,
			PageSize: r.cfg.PageSize,
		}, func(recs []servicenow.Record) error { return p.page(ctx, cursor, recs) })
		p.res.Pages += stats.Pages
		p.res.Calls += stats.Calls
		switch {
		case err == nil:
			p.res.Done = true
		case errors.Is(err, errRequery):
			cursor = p.last.UpdatedOn
			continue
		case errors.Is(err, errDeadline):
			p.res.Stopped = StoppedDeadline
		case servicenow.IsNotAdmitted(err):
			p.res.Stopped, p.res.Err = StoppedBudget, err
		default:
			p.res.Stopped, p.res.Err = StoppedError, err
			p.res.Permanent = errors.Is(err, servicenow.ErrForbidden)
		}
		break
	}

	if p.res.Done && p.advance {
		// Everything changed before this pass started has been read.
		if err := r.d.Watermarks.MarkSynced(ctx, gw.ID, t.name, started); err != nil && !errors.Is(err, watermark.ErrBehind) {
			p.res.Err = err
		}
	}
	switch {
	case p.res.Done:
		p.res.Lag = 0
	default:
		latest := mark.SyncedAt
		if p.hasLast && p.last.UpdatedOn.After(latest) {
			latest = p.last.UpdatedOn
		}
		if latest.IsZero() {
			latest = t.createdAt
		}
		p.res.Lag = max(r.d.Now().Sub(latest), 0)
	}
	return p.res
}

// beyond reports whether the pass has handled a record past the watermark
// it started from.
func (p *pass) beyond() bool { return p.hasLast && p.last.Compare(p.stored) > 0 }

// record is the part of a ServiceNow record the pass decides on.
type record struct {
	pos     watermark.Position
	version *int
}

// page handles one page of the query that started at cursor: skip what is
// known, enqueue the rest, then move the watermark to the page's last
// record. Its error stops the query: errRequery and errDeadline are signals,
// anything else a failure.
func (p *pass) page(ctx context.Context, cursor time.Time, recs []servicenow.Record) error {
	var fresh []record
	var ids []string
	var pageLast watermark.Position
	for _, rec := range recs {
		r := parse(rec)
		if !r.pos.UpdatedOn.IsZero() && p.hasLast && r.pos.Compare(p.last) <= 0 {
			// Read again by a re-query from its second: handled already, and
			// not counted, so that Scanned = Enqueued + Skipped.
			continue
		}
		p.res.Scanned++
		if r.pos.SysID == "" {
			p.res.Skipped++ // nothing to enqueue without a sys_id
			continue
		}
		if !r.pos.UpdatedOn.IsZero() {
			if r.pos.Compare(pageLast) > 0 {
				pageLast = r.pos
			}
		}
		fresh = append(fresh, r)
		ids = append(ids, r.pos.SysID)
	}
	if err := p.enqueue(ctx, fresh, ids); err != nil {
		return err
	}
	if !pageLast.IsZero() {
		if p.advance {
			err := p.r.d.Watermarks.Advance(ctx, p.gw.ID, p.t.name, pageLast)
			if err != nil && !errors.Is(err, watermark.ErrBehind) {
				return err
			}
		}
		p.last, p.hasLast = pageLast, true
		p.res.Position = pageLast
	}
	if p.o.Progress != nil {
		p.o.Progress(p.res)
	}
	// The budget applies only once this pass has gone past the stored
	// watermark: a run must make progress, or a window of overlap holding
	// more records than one run can read would be read again forever.
	if p.beyond() && !time.Now().Before(p.stopAt) {
		return errDeadline
	}
	if p.hasLast && p.last.UpdatedOn.After(cursor) {
		return errRequery
	}
	return nil
}

// enqueue sends the records whose version is neither decided nor already
// queued (see state.Known.Handled).
func (p *pass) enqueue(ctx context.Context, fresh []record, ids []string) error {
	if len(fresh) == 0 {
		return nil
	}
	known, err := p.r.d.Tickets.Versions(ctx, p.gw.ID, p.t.name, ids)
	if err != nil {
		return err
	}
	now := p.r.d.Now().UTC()
	var msgs []queue.IntakeMessage
	for _, r := range fresh {
		if k, ok := known[r.pos.SysID]; ok && r.version != nil && k.Handled(*r.version, now) {
			p.res.Skipped++
			continue
		}
		msgs = append(msgs, queue.IntakeMessage{
			GatewayID:   p.gw.ID,
			WebhookID:   p.t.webhookID,
			Table:       p.t.name,
			SysID:       r.pos.SysID,
			Source:      queue.SourceReconcile,
			ReceivedAt:  now,
			SysModCount: r.version,
		})
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := p.r.send(ctx, p.r.d.Logger, msgs, nil, p.sent); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	p.res.Enqueued += len(msgs)
	return nil
}

func parse(rec servicenow.Record) record {
	r := record{pos: watermark.Position{SysID: rec.SysID()}}
	if t, err := rec.SysUpdatedOn(); err == nil {
		r.pos.UpdatedOn = t.Time
	}
	if v, err := rec.SysModCount(); err == nil {
		r.version = &v
	}
	return r
}
