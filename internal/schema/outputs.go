package schema

// CloudFormation output keys of the service stack. The CDK app exports them
// and the CLI reads them (by stack name) when no flag or SNOWGATE_* variable
// names a resource.
const (
	OutputAPIURL           = "ApiUrl"
	OutputRegistryTable    = "RegistryTableName"
	OutputStateTable       = "StateTableName"
	OutputIntakeQueueURL   = "IntakeQueueUrl"
	OutputIntakeDLQURL     = "IntakeDLQUrl"
	OutputDispatchQueueURL = "DispatchQueueUrl"
	OutputDispatchDLQURL   = "DispatchDLQUrl"
	OutputResultsQueueURL  = "ResultsQueueUrl"
	OutputResultsDLQURL    = "ResultsDLQUrl"
	OutputSecretPrefix     = "SecretPrefix"
)
