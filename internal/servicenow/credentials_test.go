package servicenow_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/servicenow"
)

func TestLoadCredentials(t *testing.T) {
	ctx := context.Background()
	store := secrets.New(secretsmanager.NewFromConfig(awstest.Config(t)))
	oauth := registry.Credentials{Auth: registry.AuthOAuthPassword, ClientID: testClientID, ClientSecret: testClientSecret, Username: testUser, Password: testPassword}
	tests := []struct {
		name    string
		value   string // "" leaves the secret out
		want    registry.Credentials
		wantErr error
	}{
		{name: "oauth password grant", value: credsJSON(t, oauth), want: oauth},
		{name: "basic", value: credsJSON(t, registry.Credentials{Auth: registry.AuthBasic, Username: testUser, Password: testPassword}),
			want: registry.Credentials{Auth: registry.AuthBasic, Username: testUser, Password: testPassword}},
		{name: "incomplete", value: credsJSON(t, registry.Credentials{Auth: registry.AuthBasic, Username: testUser}), wantErr: servicenow.ErrInvalidCredentials},
		{name: "not JSON", value: "user=" + testUser + " password=" + testPassword, wantErr: servicenow.ErrInvalidCredentials},
		{name: "missing secret", wantErr: secrets.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var arn string
			if tc.value != "" {
				var err error
				arn, err = store.Create(ctx, awstest.UniqueName("snowgate/test-creds-"), tc.value, "test")
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				t.Cleanup(func() { _ = store.Delete(context.Background(), arn) })
			} else {
				arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:" + awstest.UniqueName("snowgate/absent-") + "-AbCdEf"
			}

			got, err := servicenow.LoadCredentials(ctx, store, arn)

			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("LoadCredentials() error = %v, want %v", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), testPassword) {
					t.Errorf("LoadCredentials() error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCredentials: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("LoadCredentials() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
