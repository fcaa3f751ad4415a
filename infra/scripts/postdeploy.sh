#!/bin/sh
# azd postdeploy hook. The Key Vault event subscriptions deliver to the function onKeyVaultEvent, which
# exists only once the code is deployed: the first `azd up` provisions without them, and this hook then
# turns them on with a second provision. It acts only while KEY_VAULT_EVENTS_ENABLED has never been set,
# so `azd env set KEY_VAULT_EVENTS_ENABLED false` keeps the subscriptions off.
set -eu

if [ -n "${KEY_VAULT_EVENTS_ENABLED:-}" ]; then
  echo "KEY_VAULT_EVENTS_ENABLED=${KEY_VAULT_EVENTS_ENABLED}: nothing to do."
  exit 0
fi

# Event Grid checks that the destination function exists; wait for the host to list it. In the azd
# environment's subscription, not the Azure CLI's default one.
if command -v az >/dev/null 2>&1; then
  echo "Waiting for function onKeyVaultEvent on ${AZURE_FUNCTION_APP_NAME}..."
  tries=0
  until az functionapp function show --subscription "${AZURE_SUBSCRIPTION_ID}" --resource-group "${AZURE_RESOURCE_GROUP}" \
    --name "${AZURE_FUNCTION_APP_NAME}" --function-name onKeyVaultEvent --output none 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
      echo "onKeyVaultEvent is not listed after 5 minutes; run 'azd env set KEY_VAULT_EVENTS_ENABLED true && azd provision' later." >&2
      exit 1
    fi
    sleep 10
  done
fi

echo "Subscribing onKeyVaultEvent to the vaults' events (second provision)..."
azd env set KEY_VAULT_EVENTS_ENABLED true
azd provision --no-prompt
