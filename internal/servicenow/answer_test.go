package servicenow_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/servicenow"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var htmlHeader = map[string]string{"Content-Type": "text/html; charset=UTF-8"}

// TestAnswerIsNotAPage: a 2xx whose body is not the API's answer is an
// error, never a record. The shapes follow
//   - the Table API reference (REST API reference, "Table API"): a result
//     object or array in {"result": …}, and ServiceNow's REST error
//     envelope {"error":{"message","detail"},"status":"failure"};
//   - KB1297438 "Response Returned by a REST Table API That's Cancelled Due
//     to Exceeding a Transaction Quota Rule": a transaction cancelled while
//     it runs answers 200, its body cut short with the error object
//     appended, so that the whole is not JSON;
//   - the developer blog's "Hibernation and Developer Instances": a
//     hibernating developer instance answers HTTP requests with a page
//     (HTML, status 200) that links to the portal that wakes it.
//
// The fixtures under testdata are written for these tests in those shapes.
func TestAnswerIsNotAPage(t *testing.T) {
	okRecord := fixture(t, "record_mentions_error.json")
	tests := []struct {
		name    string
		replies []reply
		wantErr error
		// wantRequests: an error envelope is retried like a 5xx; a
		// hibernating instance and a cancelled transaction are handed back
		// at once, since the same request would meet the same answer.
		wantRequests int
		wantMessage  string // substring of the error
	}{
		{
			name:         "hibernating instance: HTML with 200",
			replies:      []reply{{status: 200, header: htmlHeader, body: fixture(t, "hibernating.html")}},
			wantErr:      servicenow.ErrNotAPI,
			wantRequests: 1,
			wantMessage:  "the instance did not answer the API (hibernating?) (got text/html)",
		},
		{
			name:         "plain text with 200",
			replies:      []reply{{status: 200, header: map[string]string{"Content-Type": "text/plain"}, body: "OK"}},
			wantErr:      servicenow.ErrNotAPI,
			wantRequests: 1,
		},
		{
			name:         "error envelope with 200, then the record",
			replies:      []reply{{status: 200, body: fixture(t, "error_envelope.json")}, {status: 200, body: okRecord}},
			wantRequests: 2,
		},
		{
			name:         "error envelope with 200 until the attempts run out",
			replies:      []reply{{status: 200, body: fixture(t, "error_envelope.json")}},
			wantErr:      servicenow.ErrFailureAnswer,
			wantRequests: servicenow.DefaultMaxAttempts,
			wantMessage:  "Something went wrong on the node (Consult the node log for the trace)",
		},
		{
			name:         "status failure without an error object",
			replies:      []reply{{status: 200, body: `{"result":{"sys_id":"` + sysID1 + `"},"status":"failure"}`}},
			wantErr:      servicenow.ErrFailureAnswer,
			wantRequests: servicenow.DefaultMaxAttempts,
		},
		{
			name:         "cancelled transaction: truncated body with the error appended",
			replies:      []reply{{status: 200, body: fixture(t, "quota_cancelled.txt")}, {status: 200, body: okRecord}},
			wantErr:      servicenow.ErrTransactionCancelled,
			wantRequests: 1,
			wantMessage:  "transaction cancelled (quota rule): Transaction cancelled: the rule's time limit was reached",
		},
		{
			name:         "cancelled transaction in a complete envelope",
			replies:      []reply{{status: 200, body: `{"error":{"message":"Transaction cancelled: time limit","detail":""},"status":"failure"}`}},
			wantErr:      servicenow.ErrTransactionCancelled,
			wantRequests: 1,
		},
		{
			name:         "a record that mentions an error is a record",
			replies:      []reply{{status: 200, body: okRecord}},
			wantRequests: 1,
		},
		{
			name:         "error null and status success are no error",
			replies:      []reply{{status: 200, body: `{"result":{"sys_id":"` + sysID1 + `","number":"INC0010001","sys_mod_count":"3"},"error":null,"status":"success"}`}},
			wantRequests: 1,
		},
		{
			name:         "truncated body without an error object stays malformed",
			replies:      []reply{{status: 200, body: `{"result":{"sys_id":"` + sysID1 + `","short_description":"error"`}},
			wantErr:      servicenow.ErrBadResponse,
			wantRequests: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tc.replies...)
			w := &waits{}
			c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep(w.sleep))

			rec, err := c.Get(context.Background(), "incident", sysID1)

			if tc.wantErr == nil {
				if err != nil || rec.SysID() != sysID1 {
					t.Fatalf("Get() = %v, %v; want the record", rec, err)
				}
			} else {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Get() = %v, %v; want an error matching %v", rec, err, tc.wantErr)
				}
				if rec != nil {
					t.Errorf("Get() record = %v with its error, want none", rec)
				}
				wantRetryable := tc.wantErr != servicenow.ErrBadResponse
				if got := servicenow.IsRetryable(err); got != wantRetryable {
					t.Errorf("IsRetryable(%v) = %v, want %v", err, got, wantRetryable)
				}
				if !strings.Contains(err.Error(), tc.wantMessage) {
					t.Errorf("Get() error %q, want it to contain %q", err, tc.wantMessage)
				}
				var ae *servicenow.AnswerError
				if tc.wantErr != servicenow.ErrBadResponse && (!errors.As(err, &ae) || ae.Status != 200) {
					t.Errorf("Get() error %v, want an *AnswerError with status 200", err)
				}
			}
			if got := len(f.requests()); got != tc.wantRequests {
				t.Errorf("instance received %d requests, want %d", got, tc.wantRequests)
			}
		})
	}
}

// TestQueryStopsAtACancelledPage: a page cut short by a transaction quota
// rule (KB1297438) fails the query; the records before the cut are never
// handed over as a partial page, and the pages before it were.
func TestQueryStopsAtACancelledPage(t *testing.T) {
	page1 := `{"result":[{"sys_id":"` + sysID2 + `","sys_updated_on":"2026-03-14 14:00:00","sys_mod_count":"1"}]}`
	f := newFake(t,
		reply{status: 200, header: map[string]string{"Link": `</api/now/table/incident?sysparm_offset=1&sysparm_limit=1>;rel="next"`}, body: page1},
		reply{status: 200, body: fixture(t, "quota_cancelled.txt")},
	)
	c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep((&waits{}).sleep))
	var pages [][]servicenow.Record
	stats, err := c.Query(context.Background(), "incident", servicenow.Query{Encoded: "ORDERBYsys_id", PageSize: 1}, func(recs []servicenow.Record) error {
		pages = append(pages, recs)
		return nil
	})
	if !errors.Is(err, servicenow.ErrTransactionCancelled) || !servicenow.IsRetryable(err) {
		t.Fatalf("Query() error = %v, want a retryable ErrTransactionCancelled", err)
	}
	if len(pages) != 1 || len(pages[0]) != 1 || pages[0][0].SysID() != sysID2 {
		t.Errorf("pages handed over = %v, want only the first", pages)
	}
	if stats.Pages != 1 || stats.Calls != 2 {
		t.Errorf("stats = %+v, want 1 page and 2 calls", stats)
	}
}

// TestTokenFromAHibernatingInstance: the token endpoint of a hibernating
// developer instance answers with the same HTML page ("Hibernation and
// Developer Instances", developer blog); the error says so instead of
// "no access_token".
func TestTokenFromAHibernatingInstance(t *testing.T) {
	f := newFake(t, reply{status: 200, header: htmlHeader, body: fixture(t, "hibernating.html")})
	c := newClient(t, f.URL, servicenow.OAuthClientCredentials(testClientID, testClientSecret), servicenow.WithSleep((&waits{}).sleep))
	_, err := c.Get(context.Background(), "incident", sysID1)
	if !errors.Is(err, servicenow.ErrNotAPI) || !servicenow.IsRetryable(err) {
		t.Fatalf("Get() error = %v, want a retryable ErrNotAPI", err)
	}
	if got := len(f.requests()); got != 1 {
		t.Errorf("instance received %d requests, want 1 (the token request)", got)
	}
}

// TestForbidden: a table the integration user may not read answers 403
// with the REST error envelope, message "Insufficient rights to query
// records" (Table API reference, "Table API security": ACLs are enforced
// on Table API calls; REST API HTTP response codes, KB1479016: 403 is an
// operation the user is not permitted, such as an ACL failure). It is
// permanent: no retry, and the message names the missing right.
func TestForbidden(t *testing.T) {
	ctx := context.Background()
	forbidden := reply{status: http.StatusForbidden, body: fixture(t, "forbidden.json")}
	ok := reply{status: 200, body: okIncident}
	tests := []struct {
		name   string
		answer reply // forbidden when zero
		call   func(c *servicenow.Client) error
		want   string
	}{
		{
			name: "get",
			call: func(c *servicenow.Client) error { _, err := c.Get(ctx, "incident", sysID1); return err },
			want: "the integration user may not read table incident (403 Insufficient rights to query records: " +
				"Fields present in the query do not have permission to be read): grant it a role with read access (e.g. itil)",
		},
		{
			name: "query",
			call: func(c *servicenow.Client) error {
				_, err := c.Query(ctx, "change_request", servicenow.Query{}, func([]servicenow.Record) error { return nil })
				return err
			},
			want: "may not read table change_request (403 Insufficient rights to query records",
		},
		{
			name:   "update",
			answer: reply{status: http.StatusForbidden, body: errorBody("Operation Failed", "Update refused by an access rule")},
			call: func(c *servicenow.Client) error {
				_, err := c.Update(ctx, "incident", sysID1, map[string]string{"state": "6"})
				return err
			},
			want: "may not write table incident (403 Operation Failed: Update refused by an access rule): grant it a role with write access",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			answer := tc.answer
			if answer.status == 0 {
				answer = forbidden
			}
			f := newFake(t, answer, ok)
			c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithSleep((&waits{}).sleep))
			err := tc.call(c)
			if !errors.Is(err, servicenow.ErrForbidden) || servicenow.IsRetryable(err) {
				t.Fatalf("error = %v, want a permanent ErrForbidden", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if got := len(f.requests()); got != 1 {
				t.Errorf("instance received %d requests, want 1", got)
			}
		})
	}
}

// TestUnauthorizedNamesTheSetting: a 401 says which gate refused and what
// to change.
//   - OAuth client credentials is off by default: "Client Credentials" and
//     "Create the Client Credentials system property" (ServiceNow docs,
//     Platform security > OAuth inbound) name the system property
//     glide.oauth.inbound.client.credential.grant_type.enabled (false
//     unless created as true), and "Add the OAuth Application User field"
//     says a request is refused while the OAuth client has no OAuth
//     Application User. Which error each gap gives (access_denied /
//     server_error for the property, unauthorized_client for the user) is
//     as refractionPOINT/documentation pull request 283 found on a live
//     instance.
//   - Basic auth: "Basic authentication restriction" and "Enable basic
//     authentication restriction" (glide.authenticate.basic_auth.
//     restriction.active) restrict basic auth API requests of
//     interactive-login accounts; newly provisioned instances restrict it
//     by default ("Basic authentication").
func TestUnauthorizedNamesTheSetting(t *testing.T) {
	tests := []struct {
		name    string
		auth    servicenow.Auth
		replies []reply
		want    []string
	}{
		{
			name:    "client credentials refused at the token endpoint",
			auth:    servicenow.OAuthClientCredentials(testClientID, testClientSecret),
			replies: []reply{{status: 401, body: fixture(t, "oauth_denied.json")}},
			want:    []string{"401", "glide.oauth.inbound.client.credential.grant_type.enabled", "OAuth Application User"},
		},
		{
			name:    "client credentials without an OAuth Application User",
			auth:    servicenow.OAuthClientCredentials(testClientID, testClientSecret),
			replies: []reply{{status: 401, body: fixture(t, "oauth_no_app_user.json")}},
			want:    []string{"401", "unauthorized_client", "no OAuth Application User"},
		},
		{
			name:    "password grant refused at the token endpoint",
			auth:    servicenow.OAuthPassword(testClientID, testClientSecret, testUser, testPassword),
			replies: []reply{{status: 401, body: fixture(t, "oauth_denied.json")}},
			want:    []string{"401", "password grant", "client id and secret"},
		},
		{
			name:    "basic auth refused",
			auth:    servicenow.BasicAuth(testUser, testPassword),
			replies: []reply{{status: 401, body: fixture(t, "unauthenticated.json")}},
			want:    []string{"401", "User Not Authenticated", "web service access only", "basic auth restriction"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.replies...)
			c := newClient(t, f.URL, tc.auth, servicenow.WithSleep((&waits{}).sleep), servicenow.WithClock(func() time.Time { return now }))
			_, err := c.Get(context.Background(), "incident", sysID1)
			if err == nil || servicenow.IsRetryable(err) {
				t.Fatalf("Get() error = %v, want a permanent 401", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Get() error %q, want it to contain %q", err, w)
				}
			}
			for _, secret := range []string{testPassword, testClientSecret} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Get() error %q shows a secret", err)
				}
			}
		})
	}
}

// TestQueryRefusesAResultBesideAnError: records next to ServiceNow's REST
// error envelope, {"error":{"message","detail"},"status":"failure"} (the
// failure shape of the Table API reference), are not a page, even when the
// JSON is whole: the query fails, retryable, and hands nothing over.
func TestQueryRefusesAResultBesideAnError(t *testing.T) {
	f := newFake(t, reply{status: 200, body: fixture(t, "result_with_error.json")})
	c := newClient(t, f.URL, servicenow.BasicAuth(testUser, testPassword), servicenow.WithMaxAttempts(1))
	pages := 0
	_, err := c.Query(context.Background(), "incident", servicenow.Query{}, func([]servicenow.Record) error {
		pages++
		return nil
	})
	if !errors.Is(err, servicenow.ErrFailureAnswer) || !servicenow.IsRetryable(err) {
		t.Fatalf("Query() error = %v, want a retryable ErrFailureAnswer", err)
	}
	if !strings.Contains(err.Error(), "Query interrupted (The node stopped the query)") {
		t.Errorf("Query() error %q, want the envelope's message and detail", err)
	}
	if pages != 0 {
		t.Errorf("%d pages handed over, want none", pages)
	}
}
