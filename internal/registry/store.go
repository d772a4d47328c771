package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/schema"
)

// Outcomes of registry reads and writes.
var (
	// ErrNotFound is returned for an unknown gateway, webhook or path.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when an id or path is already taken.
	ErrExists = errors.New("already exists")
	// ErrGatewayInactive is returned when a webhook is added to an inactive gateway.
	ErrGatewayInactive = errors.New("gateway is inactive")
	// ErrGatewayInUse is returned when deleting a gateway that webhooks point at.
	ErrGatewayInUse = errors.New("gateway has webhooks")
	// ErrConflict is returned when concurrent writers kept changing the same
	// gateway and a write could not be applied after several attempts.
	ErrConflict = errors.New("concurrent update, try again")
	// ErrTooManyWebhooks is returned when a change would need more items in
	// one transaction than DynamoDB allows (100).
	ErrTooManyWebhooks = errors.New("too many webhooks to change in one transaction")
)

// attrVersion is a counter on gateway items, outside the Gateway struct.
// Every write to a gateway or to any of its webhooks checks and bumps it in
// the same transaction. That serialises all writes under one gateway, which
// is what keeps each Route consistent with both its webhook and its gateway
// (Route.Active depends on both) and lets a gateway deletion see every
// webhook created before it. Items written without it count as version 0.
const attrVersion = "version"

// attrWebhookIDs is a string set on gateway items, also outside the struct,
// naming the gateway's webhooks. It is maintained in the same transactions
// that create and delete webhooks, so a gateway write knows exactly which
// Route items it must rewrite or delete, without waiting for the by_kind
// index to catch up.
const attrWebhookIDs = "webhook_ids"

// maxTransactItems is DynamoDB's limit on actions in one TransactWriteItems.
const maxTransactItems = 100

// attempts bounds the read-check-write loop of a write under contention.
const attempts = 5

// Store reads and writes the registry table.
type Store struct {
	db    *dynamodb.Client
	table string
	now   func() time.Time
}

// Option adjusts a Store.
type Option func(*Store)

// WithClock sets the clock used for timestamps and secret expiry.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns a Store over the named registry table.
func New(db *dynamodb.Client, table string, opts ...Option) *Store {
	s := &Store{db: db, table: table, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Route returns the path item for a webhook path in one GetItem.
// An unknown path is ErrNotFound.
func (s *Store) Route(ctx context.Context, path string) (Route, error) {
	var r Route
	// Eventually consistent: this is ingest's hot path, and a change reaches
	// it within a second either way.
	if _, err := s.read(ctx, PathKey(path), &r, false); err != nil {
		return Route{}, fmt.Errorf("get route: %w", err)
	}
	return r, nil
}

// Gateway returns one gateway; an unknown id is ErrNotFound.
func (s *Store) Gateway(ctx context.Context, id string) (Gateway, error) {
	g, _, err := s.gateway(ctx, id)
	return g, err
}

func (s *Store) gateway(ctx context.Context, id string) (Gateway, int64, error) {
	g, item, err := s.gatewayItem(ctx, id)
	return g, version(item), err
}

func (s *Store) gatewayItem(ctx context.Context, id string) (Gateway, map[string]ddbtypes.AttributeValue, error) {
	var g Gateway
	item, err := s.get(ctx, GatewayKey(id), &g)
	if err != nil {
		return Gateway{}, nil, fmt.Errorf("get gateway %s: %w", id, err)
	}
	return g, item, nil
}

// hooksOf reads, consistently, every webhook of a gateway: those named in
// its webhook_ids set plus any the index lists (items written by other
// tools may lack the set).
func (s *Store) hooksOf(ctx context.Context, id string, item map[string]ddbtypes.AttributeValue) ([]Webhook, error) {
	ids := map[string]bool{}
	if set, ok := item[attrWebhookIDs].(*ddbtypes.AttributeValueMemberSS); ok {
		for _, v := range set.Value {
			ids[v] = true
		}
	}
	listed, err := s.Webhooks(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, w := range listed {
		ids[w.ID] = true
	}
	sorted := make([]string, 0, len(ids))
	for v := range ids {
		sorted = append(sorted, v)
	}
	slices.Sort(sorted)
	var out []Webhook
	for _, v := range sorted {
		w, err := s.Webhook(ctx, v)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if w.GatewayID == id {
			out = append(out, w)
		}
	}
	return out, nil
}

// Gateways lists every gateway in id order.
func (s *Store) Gateways(ctx context.Context) ([]Gateway, error) {
	var out []Gateway
	if err := s.queryKind(ctx, KindGateway, "", &out); err != nil {
		return nil, fmt.Errorf("list gateways: %w", err)
	}
	return out, nil
}

// Webhook returns one webhook; an unknown id is ErrNotFound.
func (s *Store) Webhook(ctx context.Context, id string) (Webhook, error) {
	var w Webhook
	if _, err := s.get(ctx, WebhookKey(id), &w); err != nil {
		return Webhook{}, fmt.Errorf("get webhook %s: %w", id, err)
	}
	return w, nil
}

// Webhooks lists the webhooks of a gateway in id order; "" lists all.
func (s *Store) Webhooks(ctx context.Context, gatewayID string) ([]Webhook, error) {
	var out []Webhook
	if err := s.queryKind(ctx, KindWebhook, gatewayID, &out); err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// CreateGateway stores a new gateway. Its id must be unused (ErrExists).
func (s *Store) CreateGateway(ctx context.Context, g Gateway) (Gateway, error) {
	now := s.now().UTC()
	g.CreatedAt, g.UpdatedAt = now, now
	item, err := itemOf(GatewayKey(g.ID), KindGateway, g)
	if err != nil {
		return Gateway{}, err
	}
	item[attrVersion] = number(1)
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(s.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{
			"#pk": schema.AttrPK,
		},
	})
	var ccf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return Gateway{}, fmt.Errorf("create gateway %s: %w", g.ID, ErrExists)
	}
	if err != nil {
		return Gateway{}, fmt.Errorf("create gateway %s: %w", g.ID, err)
	}
	return g, nil
}

// UpdateGateway applies change to a gateway and stores it. When the change
// flips Active, the Route items of all its webhooks are rewritten in the
// same transaction, so ingest (which reads only the Route) sees it at once.
// The id and creation time cannot change.
func (s *Store) UpdateGateway(ctx context.Context, id string, change func(*Gateway) error) (Gateway, error) {
	var out Gateway
	err := s.retry(ctx, func() error {
		g, gitem, err := s.gatewayItem(ctx, id)
		if err != nil {
			return err
		}
		v := version(gitem)
		old := g
		if err := change(&g); err != nil {
			return err
		}
		now := s.now().UTC()
		g.ID, g.CreatedAt, g.UpdatedAt = old.ID, old.CreatedAt, now
		item, err := itemOf(GatewayKey(id), KindGateway, g)
		if err != nil {
			return err
		}
		item[attrVersion] = number(v + 1)
		if ids, ok := gitem[attrWebhookIDs]; ok {
			item[attrWebhookIDs] = ids
		}
		cond, names, values := versionCondition(v)
		items := []ddbtypes.TransactWriteItem{{Put: &ddbtypes.Put{
			TableName: aws.String(s.table), Item: item,
			ConditionExpression: cond, ExpressionAttributeNames: names, ExpressionAttributeValues: nonEmpty(values),
		}}}
		if old.Active != g.Active {
			hooks, err := s.hooksOf(ctx, id, gitem)
			if err != nil {
				return err
			}
			if len(hooks)+1 > maxTransactItems {
				return fmt.Errorf("update gateway %s with %d webhooks: %w", id, len(hooks), ErrTooManyWebhooks)
			}
			for _, w := range hooks {
				put, err := s.putRoute(RouteFor(w, g, now))
				if err != nil {
					return err
				}
				items = append(items, put)
			}
		}
		if err := s.transact(ctx, items); err != nil {
			return fmt.Errorf("update gateway %s: %w", id, err)
		}
		out = g
		return nil
	})
	return out, err
}

// DeleteGateway deletes a gateway. While webhooks point at it the result is
// ErrGatewayInUse, unless force is set: then its webhooks and their Route
// items go in the same transaction. It returns what it deleted, so that the
// caller can remove the secrets they reference.
func (s *Store) DeleteGateway(ctx context.Context, id string, force bool) (Gateway, []Webhook, error) {
	var gw Gateway
	var deleted []Webhook
	err := s.retry(ctx, func() error {
		g, gitem, err := s.gatewayItem(ctx, id)
		if err != nil {
			return err
		}
		v := version(gitem)
		hooks, err := s.hooksOf(ctx, id, gitem)
		if err != nil {
			return err
		}
		if len(hooks) > 0 && !force {
			return fmt.Errorf("delete gateway %s: %d webhook(s) point at it: %w", id, len(hooks), ErrGatewayInUse)
		}
		if 1+2*len(hooks) > maxTransactItems {
			return fmt.Errorf("delete gateway %s with %d webhooks: %w", id, len(hooks), ErrTooManyWebhooks)
		}
		cond, names, values := versionCondition(v)
		items := []ddbtypes.TransactWriteItem{{Delete: &ddbtypes.Delete{
			TableName: aws.String(s.table), Key: key(GatewayKey(id)),
			ConditionExpression: cond, ExpressionAttributeNames: names, ExpressionAttributeValues: nonEmpty(values),
		}}}
		for _, w := range hooks {
			items = append(items,
				ddbtypes.TransactWriteItem{Delete: &ddbtypes.Delete{TableName: aws.String(s.table), Key: key(WebhookKey(w.ID))}},
				ddbtypes.TransactWriteItem{Delete: &ddbtypes.Delete{TableName: aws.String(s.table), Key: key(PathKey(w.Path))}},
			)
		}
		if err := s.transact(ctx, items); err != nil {
			return fmt.Errorf("delete gateway %s: %w", id, err)
		}
		gw, deleted = g, hooks
		return nil
	})
	return gw, deleted, err
}

// CreateWebhook stores a new webhook and its Route item in one transaction.
// The webhook's gateway must exist and be active; its id and path must be
// unused (ErrExists).
func (s *Store) CreateWebhook(ctx context.Context, w Webhook) (Webhook, error) {
	var out Webhook
	err := s.retry(ctx, func() error {
		g, v, err := s.gateway(ctx, w.GatewayID)
		if err != nil {
			return err
		}
		if !g.Active {
			return fmt.Errorf("gateway %s: %w", g.ID, ErrGatewayInactive)
		}
		now := s.now().UTC()
		w.CreatedAt, w.UpdatedAt = now, now
		PruneExpired(&w, now)
		item, err := itemOf(WebhookKey(w.ID), KindWebhook, w)
		if err != nil {
			return err
		}
		route, err := s.putRoute(RouteFor(w, g, now))
		if err != nil {
			return err
		}
		notExists := aws.String("attribute_not_exists(#pk)")
		pkName := map[string]string{"#pk": schema.AttrPK}
		route.Put.ConditionExpression, route.Put.ExpressionAttributeNames = notExists, pkName
		items := []ddbtypes.TransactWriteItem{
			{Put: &ddbtypes.Put{TableName: aws.String(s.table), Item: item, ConditionExpression: notExists, ExpressionAttributeNames: pkName}},
			route,
			s.bumpGateway(g.ID, v, "ADD", w.ID),
		}
		err = s.transact(ctx, items)
		if failed := failedItems(err); failed[0] || failed[1] {
			return fmt.Errorf("create webhook %s (path %s): %w", w.ID, w.Path, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create webhook %s: %w", w.ID, err)
		}
		out = w
		return nil
	})
	return out, err
}

// UpdateWebhook applies change to a webhook and rewrites it and its Route in
// one transaction, dropping secrets whose grace period has ended. The id,
// path, gateway and creation time cannot change. It returns the stored
// webhook and the signing keys that were dropped, whose secrets the caller
// should now delete.
func (s *Store) UpdateWebhook(ctx context.Context, id string, change func(*Webhook) error) (Webhook, []SigningKeyRef, error) {
	var out Webhook
	var dropped []SigningKeyRef
	err := s.retry(ctx, func() error {
		w, err := s.Webhook(ctx, id)
		if err != nil {
			return err
		}
		g, v, err := s.gateway(ctx, w.GatewayID)
		if err != nil {
			return err
		}
		old := w
		if err := change(&w); err != nil {
			return err
		}
		now := s.now().UTC()
		w.ID, w.Path, w.GatewayID, w.CreatedAt, w.UpdatedAt = old.ID, old.Path, old.GatewayID, old.CreatedAt, now
		removed := PruneExpired(&w, now)
		item, err := itemOf(WebhookKey(id), KindWebhook, w)
		if err != nil {
			return err
		}
		route, err := s.putRoute(RouteFor(w, g, now))
		if err != nil {
			return err
		}
		items := []ddbtypes.TransactWriteItem{
			{Put: &ddbtypes.Put{
				TableName: aws.String(s.table), Item: item,
				ConditionExpression:      aws.String("attribute_exists(#pk)"),
				ExpressionAttributeNames: map[string]string{"#pk": schema.AttrPK},
			}},
			route,
			s.bumpGateway(g.ID, v, "", ""),
		}
		if err := s.transact(ctx, items); err != nil {
			return fmt.Errorf("update webhook %s: %w", id, err)
		}
		out, dropped = w, removed
		return nil
	})
	return out, dropped, err
}

// DeleteWebhook deletes a webhook and its Route item in one transaction and
// returns what it deleted.
func (s *Store) DeleteWebhook(ctx context.Context, id string) (Webhook, error) {
	var out Webhook
	err := s.retry(ctx, func() error {
		w, err := s.Webhook(ctx, id)
		if err != nil {
			return err
		}
		items := []ddbtypes.TransactWriteItem{
			{Delete: &ddbtypes.Delete{
				TableName: aws.String(s.table), Key: key(WebhookKey(id)),
				ConditionExpression:      aws.String("attribute_exists(#pk)"),
				ExpressionAttributeNames: map[string]string{"#pk": schema.AttrPK},
			}},
			{Delete: &ddbtypes.Delete{TableName: aws.String(s.table), Key: key(PathKey(w.Path))}},
		}
		_, v, err := s.gateway(ctx, w.GatewayID)
		switch {
		case errors.Is(err, ErrNotFound):
			// An orphan (its gateway is gone): nothing to serialise against.
		case err != nil:
			return err
		default:
			items = append(items, s.bumpGateway(w.GatewayID, v, "DELETE", w.ID))
		}
		if err := s.transact(ctx, items); err != nil {
			return fmt.Errorf("delete webhook %s: %w", id, err)
		}
		out = w
		return nil
	})
	return out, err
}

// RouteFor is the Route item of a webhook under its gateway at time now:
// active only when both are, with the secrets that have not expired.
func RouteFor(w Webhook, g Gateway, now time.Time) Route {
	return Route{
		Path:         w.Path,
		WebhookID:    w.ID,
		GatewayID:    w.GatewayID,
		Table:        w.EventType,
		Active:       w.Active && g.Active,
		Signing:      w.Signing,
		SecretHashes: liveHashes(w.SecretHashes, now),
		SigningKeys:  liveKeys(w.SigningKeys, now),
		UpdatedAt:    now,
	}
}

// errRetry marks a failed condition or a transaction conflict: another
// writer got there first, so the operation starts again from a fresh read.
var errRetry = errors.New("condition failed")

func (s *Store) retry(ctx context.Context, op func() error) error {
	for i := 0; i < attempts; i++ {
		err := op()
		if !errors.Is(err, errRetry) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(i+1) * 20 * time.Millisecond):
		}
	}
	return ErrConflict
}

func (s *Store) transact(ctx context.Context, items []ddbtypes.TransactWriteItem) error {
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	var tc *ddbtypes.TransactionCanceledException
	if errors.As(err, &tc) {
		return &canceledError{reasons: tc.CancellationReasons}
	}
	var conflict *ddbtypes.TransactionConflictException
	if errors.As(err, &conflict) {
		return &canceledError{}
	}
	return err
}

// canceledError is a cancelled transaction; it is errRetry.
type canceledError struct{ reasons []ddbtypes.CancellationReason }

func (e *canceledError) Error() string        { return "transaction cancelled: " + errRetry.Error() }
func (e *canceledError) Is(target error) bool { return target == errRetry }

// failedItems reports which items of a cancelled transaction failed their
// condition. Emulators that send no reasons yield an empty set.
func failedItems(err error) map[int]bool {
	var ce *canceledError
	if !errors.As(err, &ce) {
		return nil
	}
	out := map[int]bool{}
	for i, r := range ce.reasons {
		if aws.ToString(r.Code) == "ConditionalCheckFailed" {
			out[i] = true
		}
	}
	return out
}

// bumpGateway checks and bumps a gateway's version; op "ADD" or "DELETE"
// also adds or removes a webhook id in its webhook_ids set.
func (s *Store) bumpGateway(id string, v int64, op, webhookID string) ddbtypes.TransactWriteItem {
	cond, names, values := versionCondition(v)
	values[":next"] = number(v + 1)
	expr := "SET #v = :next"
	if op != "" {
		names["#ids"] = attrWebhookIDs
		values[":id"] = &ddbtypes.AttributeValueMemberSS{Value: []string{webhookID}}
		expr += " " + op + " #ids :id"
	}
	return ddbtypes.TransactWriteItem{Update: &ddbtypes.Update{
		TableName:                 aws.String(s.table),
		Key:                       key(GatewayKey(id)),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       cond,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}}
}

func (s *Store) putRoute(r Route) (ddbtypes.TransactWriteItem, error) {
	item, err := itemOf(PathKey(r.Path), KindPath, r)
	if err != nil {
		return ddbtypes.TransactWriteItem{}, err
	}
	return ddbtypes.TransactWriteItem{Put: &ddbtypes.Put{TableName: aws.String(s.table), Item: item}}, nil
}

// versionCondition requires a gateway item to exist at version v.
func versionCondition(v int64) (*string, map[string]string, map[string]ddbtypes.AttributeValue) {
	names := map[string]string{"#pk": schema.AttrPK, "#v": attrVersion}
	if v == 0 {
		return aws.String("attribute_exists(#pk) AND attribute_not_exists(#v)"), names, map[string]ddbtypes.AttributeValue{}
	}
	return aws.String("attribute_exists(#pk) AND #v = :v"), names, map[string]ddbtypes.AttributeValue{":v": number(v)}
}

// get reads an item consistently: writes read, check and write back.
func (s *Store) get(ctx context.Context, pk string, out any) (map[string]ddbtypes.AttributeValue, error) {
	return s.read(ctx, pk, out, true)
}

func (s *Store) read(ctx context.Context, pk string, out any, consistent bool) (map[string]ddbtypes.AttributeValue, error) {
	res, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(pk),
		ConsistentRead: aws.Bool(consistent),
	})
	if err != nil {
		return nil, err
	}
	if res.Item == nil {
		return nil, ErrNotFound
	}
	if err := attributevalue.UnmarshalMap(res.Item, out); err != nil {
		return nil, fmt.Errorf("decode %s: %w", pk, err)
	}
	return res.Item, nil
}

// queryKind lists the items of one kind through the by_kind index,
// optionally only those of one gateway.
func (s *Store) queryKind(ctx context.Context, kind, gatewayID string, out any) error {
	in := &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		IndexName:                aws.String(schema.IndexByKind),
		KeyConditionExpression:   aws.String("#kind = :kind"),
		ExpressionAttributeNames: map[string]string{"#kind": schema.AttrKind},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":kind": &ddbtypes.AttributeValueMemberS{Value: kind},
		},
	}
	if gatewayID != "" {
		in.FilterExpression = aws.String("#gw = :gw")
		in.ExpressionAttributeNames["#gw"] = "gateway_id"
		in.ExpressionAttributeValues[":gw"] = &ddbtypes.AttributeValueMemberS{Value: gatewayID}
	}
	var items []map[string]ddbtypes.AttributeValue
	p := dynamodb.NewQueryPaginator(s.db, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		items = append(items, page.Items...)
	}
	if err := attributevalue.UnmarshalListOfMaps(items, out); err != nil {
		return fmt.Errorf("decode %s items: %w", kind, err)
	}
	return nil
}

func itemOf(pk, kind string, v any) (map[string]ddbtypes.AttributeValue, error) {
	item, err := attributevalue.MarshalMap(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", pk, err)
	}
	item[schema.AttrPK] = &ddbtypes.AttributeValueMemberS{Value: pk}
	item[schema.AttrKind] = &ddbtypes.AttributeValueMemberS{Value: kind}
	return item, nil
}

// nonEmpty drops an empty value map, which DynamoDB rejects.
func nonEmpty(m map[string]ddbtypes.AttributeValue) map[string]ddbtypes.AttributeValue {
	if len(m) == 0 {
		return nil
	}
	return m
}

func key(pk string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{schema.AttrPK: &ddbtypes.AttributeValueMemberS{Value: pk}}
}

func number(n int64) ddbtypes.AttributeValue {
	return &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func version(item map[string]ddbtypes.AttributeValue) int64 {
	n, ok := item[attrVersion].(*ddbtypes.AttributeValueMemberN)
	if !ok {
		return 0
	}
	v, _ := strconv.ParseInt(n.Value, 10, 64)
	return v
}
