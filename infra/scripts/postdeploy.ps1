# azd postdeploy hook (Windows). See postdeploy.sh: turns on the Key Vault event subscriptions after the
# first deploy, once the function onKeyVaultEvent exists, unless KEY_VAULT_EVENTS_ENABLED was ever set.
$ErrorActionPreference = 'Stop'

if ($env:KEY_VAULT_EVENTS_ENABLED) {
  Write-Host "KEY_VAULT_EVENTS_ENABLED=$($env:KEY_VAULT_EVENTS_ENABLED): nothing to do."
  exit 0
}

if (Get-Command az -ErrorAction SilentlyContinue) {
  Write-Host "Waiting for function onKeyVaultEvent on $($env:AZURE_FUNCTION_APP_NAME)..."
  $listed = $false
  for ($i = 0; $i -lt 30; $i++) {
    az functionapp function show --subscription $env:AZURE_SUBSCRIPTION_ID --resource-group $env:AZURE_RESOURCE_GROUP --name $env:AZURE_FUNCTION_APP_NAME --function-name onKeyVaultEvent --output none 2>$null
    if ($LASTEXITCODE -eq 0) { $listed = $true; break }
    Start-Sleep -Seconds 10
  }
  if (-not $listed) {
    Write-Error "onKeyVaultEvent is not listed after 5 minutes; run 'azd env set KEY_VAULT_EVENTS_ENABLED true; azd provision' later."
  }
}

Write-Host 'Subscribing onKeyVaultEvent to the vaults'' events (second provision)...'
azd env set KEY_VAULT_EVENTS_ENABLED true
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
azd provision --no-prompt
exit $LASTEXITCODE
