#!/usr/bin/env bash
# Grants the function app's managed identity its Microsoft Graph application permissions:
#   Application.ReadWrite.OwnedBy  entra-app-secret: addPassword/removePassword on the apps it owns
#   Mail.Send                      email notifications (only with --mail)
# Granting an application permission is admin consent: run this as a Privileged Role Administrator (or
# Global Administrator). It is idempotent, prints what it does, and grants nothing else.
#
#   infra/scripts/grant-graph-permissions.sh [--principal-id <objectId>] [--mail]
#
# The principal id defaults to AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID from the azd environment.
set -euo pipefail

# Microsoft Graph's application id and its app role ids (the same in every tenant; checked by name below).
GRAPH_APP_ID='00000003-0000-0000-c000-000000000000'
APPLICATION_READWRITE_OWNEDBY='18a4783c-866b-4cc7-a460-3d5e5662c884'
MAIL_SEND='b633e1c5-b582-4048-a93e-9f11b44c7e96'

principal_id="${AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID:-}"
with_mail=false
while [ $# -gt 0 ]; do
  case "$1" in
    --principal-id) principal_id="${2:-}"; shift 2 ;;
    --mail) with_mail=true; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

if [ -z "$principal_id" ] && command -v azd >/dev/null 2>&1; then
  principal_id="$(azd env get-value AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID 2>/dev/null || true)"
fi
if ! [[ "$principal_id" =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]]; then
  echo "expected the managed identity's principal (object) id, got '${principal_id}'" >&2
  exit 2
fi

# Graph of the signed-in cloud (graph.microsoft.com in the public cloud), without the trailing slash.
graph="$(az cloud show --query endpoints.microsoftGraphResourceId --output tsv)"
graph="${graph%/}"

graph_sp_id="$(az rest --method get --url "${graph}/v1.0/servicePrincipals(appId='${GRAPH_APP_ID}')" --query id --output tsv)"

grant() {
  local role_id="$1" role_name="$2" actual existing body
  # A wrong id would grant a different permission: check it names the role we mean.
  actual="$(az rest --method get --url "${graph}/v1.0/servicePrincipals/${graph_sp_id}?\$select=appRoles" \
    --query "appRoles[?id=='${role_id}'].value | [0]" --output tsv)"
  if [ "$actual" != "$role_name" ]; then
    echo "app role ${role_id} of Microsoft Graph is '${actual}', not ${role_name}; nothing granted" >&2
    exit 1
  fi
  existing="$(az rest --method get --url "${graph}/v1.0/servicePrincipals/${principal_id}/appRoleAssignments" \
    --query "length(value[?appRoleId=='${role_id}' && resourceId=='${graph_sp_id}'])" --output tsv)"
  if [ "$existing" != "0" ]; then
    echo "${role_name}: already granted"
    return
  fi
  body="$(printf '{"principalId":"%s","resourceId":"%s","appRoleId":"%s"}' "$principal_id" "$graph_sp_id" "$role_id")"
  az rest --method post --url "${graph}/v1.0/servicePrincipals/${principal_id}/appRoleAssignments" \
    --headers 'Content-Type=application/json' --body "$body" --output none
  echo "${role_name}: granted"
}

grant "$APPLICATION_READWRITE_OWNEDBY" 'Application.ReadWrite.OwnedBy'
if [ "$with_mail" = true ]; then
  grant "$MAIL_SEND" 'Mail.Send'
fi
