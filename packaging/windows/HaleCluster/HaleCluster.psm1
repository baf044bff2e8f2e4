# HaleCluster: create and remove WSFC resources that run Hale agents through hale-wsfc.exe.
#
# Per node (every node that may own the resource):
#   Install-HaleResource -Name web -Agent daemon -Parameter @{ command = "'C:\Web\web.exe' --port 8080" }
# Once per cluster (any node):
#   New-HaleClusterResource -Name web -Mode Service
#
# The cluster cmdlets come from the FailoverClusters module (RSAT-Clustering-PowerShell).

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

function Get-HaleAdapterPath {
    <# The hale-wsfc.exe next to this module (the zip layout), else the one on PATH. #>
    $here = Join-Path (Split-Path -Parent $PSScriptRoot) 'hale-wsfc.exe'
    if (Test-Path -LiteralPath $here) { return (Resolve-Path -LiteralPath $here).Path }
    $cmd = Get-Command hale-wsfc.exe -ErrorAction SilentlyContinue
    if ($cmd) { return $cmd.Source }
    throw "hale-wsfc.exe not found next to the HaleCluster module or on PATH"
}

function Get-HaleResourceTimeouts {
    <# start_timeout and stop_timeout (seconds) from the resource's configuration on this node. #>
    param([Parameter(Mandatory)] [string] $Name)
    $file = Join-Path $env:ProgramData "Hale\resources\$Name.conf"
    $t = @{ start_timeout = 60; stop_timeout = 60 }
    if (Test-Path -LiteralPath $file) {
        foreach ($line in Get-Content -LiteralPath $file) {
            if ($line -match '^(start_timeout|stop_timeout)=(\d+)$') { $t[$Matches[1]] = [int]$Matches[2] }
        }
    }
    return $t
}

function Install-HaleResource {
    <#
    .SYNOPSIS
    On this node: store the resource's agent parameters (hale-wsfc configure, checked by the
    agent's validate-all) and, for the Service mode, register its Windows service hale-<Name>.
    Run it on every node that may own the resource.
    .EXAMPLE
    Install-HaleResource -Name web -Agent daemon -Parameter @{ command = "'C:\Web\web.exe' --port 8080"; health_tcp = '127.0.0.1:8080' }
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(Mandatory)] [ValidatePattern('^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$')] [string] $Name,
        [Parameter(Mandatory)] [string] $Agent,
        [hashtable] $Parameter = @{},
        [ValidateSet('Service', 'App', 'Script')] [string] $Mode = 'Service',
        [ValidateRange(1, 86400)] [int] $IntervalSec,
        [ValidateRange(0, 1000)] [int] $DeepEvery = -1,
        [ValidateRange(1, 86400)] [int] $StartTimeoutSec,
        [ValidateRange(1, 86400)] [int] $StopTimeoutSec
    )
    $adapter = Get-HaleAdapterPath
    # Parameters go through standard input, never the command line (other users can read
    # command lines; parameters may hold secrets). Each element of $argv is one argument of the
    # native command; no shell is involved.
    $argv = @('configure', $Name, '--agent', $Agent, '--params-stdin')
    # Windows PowerShell 5.1 would pipe ASCII to native commands: send UTF-8 (no BOM).
    $OutputEncoding = [System.Text.UTF8Encoding]::new($false)
    $lines = foreach ($k in $Parameter.Keys) {
        $v = [string]$Parameter[$k]
        if ($v -match "[`r`n]") { throw "parameter $k holds a line break; not supported" }
        "$k=$v"
    }
    if ($PSBoundParameters.ContainsKey('IntervalSec')) { $argv += @('--interval', $IntervalSec) }
    if ($DeepEvery -ge 0) { $argv += @('--deep-every', $DeepEvery) }
    if ($PSBoundParameters.ContainsKey('StartTimeoutSec')) { $argv += @('--start-timeout', $StartTimeoutSec) }
    if ($PSBoundParameters.ContainsKey('StopTimeoutSec')) { $argv += @('--stop-timeout', $StopTimeoutSec) }
    if ($PSCmdlet.ShouldProcess($Name, "hale-wsfc configure ($Agent)")) {
        $lines | & $adapter @argv
        if ($LASTEXITCODE -ne 0) { throw "hale-wsfc configure $Name failed with exit code $LASTEXITCODE" }
        if ($Mode -eq 'Service') {
            & $adapter uninstall $Name | Out-Null
            & $adapter install $Name
            if ($LASTEXITCODE -ne 0) { throw "hale-wsfc install $Name failed with exit code $LASTEXITCODE" }
        }
    }
}

function New-HaleClusterResource {
    <#
    .SYNOPSIS
    Create the cluster group (if needed) and the WSFC resource of a Hale resource instance.
    .DESCRIPTION
    Service (recommended): a Generic Service resource for the service hale-<Name>; online only
    after the agent's start succeeded, offline only after its stop ran.
    App: a Generic Application running "hale-wsfc.exe app <Name>"; WSFC terminates it on
    offline, so the agent's stop does not run then (see the adapter's README).
    Script: a Generic Script whose entry points call hale-wsfc.exe; runs in its own resource
    monitor (SeparateMonitor), so a hung script cannot stall other resources.

    PendingTimeout covers the longer of the configured start and stop timeouts plus 30 s
    (at least the WSFC default of 180 s). Restart policy: restart in place up to
    RestartThreshold times within RestartPeriodSec, then fail the group over (RestartAction 2).
    .EXAMPLE
    New-HaleClusterResource -Name web -Mode Service -DependsOn 'web-ip'
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(Mandatory)] [ValidatePattern('^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$')] [string] $Name,
        [ValidateSet('Service', 'App', 'Script')] [string] $Mode = 'Service',
        # The cluster group (role); created empty if missing. Default: the resource name.
        [string] $Group = $Name,
        # The cluster resource name. Default: the Hale resource name.
        [string] $ResourceName = $Name,
        # Where the Generic Script file goes (Script mode); the same path must exist on every node.
        [string] $ScriptPath = (Join-Path $env:ProgramData "Hale\scripts\$Name.js"),
        [ValidateRange(0, 86400)] [int] $PendingTimeoutSec = 0,
        [ValidateRange(0, 2)] [int] $RestartAction = 2,
        [ValidateRange(0, 100)] [int] $RestartThreshold = 3,
        [ValidateRange(1, 86400)] [int] $RestartPeriodSec = 900,
        # Resources this one needs online first (an IP Address, a disk).
        [string[]] $DependsOn = @(),
        # GetComputerName in the service returns the role's network name.
        [switch] $UseNetworkName,
        [string] $Cluster = '.'
    )
    $c = @{ Cluster = $Cluster }
    $adapter = Get-HaleAdapterPath
    $t = Get-HaleResourceTimeouts -Name $Name
    if ($PendingTimeoutSec -eq 0) {
        $PendingTimeoutSec = [Math]::Max(180, [Math]::Max($t.start_timeout, $t.stop_timeout) + 30)
    }
    if (-not $PSCmdlet.ShouldProcess("$ResourceName in $Group", "create a Hale $Mode resource")) { return }

    if (-not (Get-ClusterGroup @c -Name $Group -ErrorAction SilentlyContinue)) {
        Add-ClusterGroup @c -Name $Group | Out-Null
    }
    switch ($Mode) {
        'Service' {
            $res = Add-ClusterResource @c -Name $ResourceName -ResourceType 'Generic Service' -Group $Group
            $res | Set-ClusterParameter -Multiple @{
                ServiceName       = "hale-$Name"
                StartupParameters = ''
                UseNetworkName    = [int][bool]$UseNetworkName
            }
        }
        'App' {
            $res = Add-ClusterResource @c -Name $ResourceName -ResourceType 'Generic Application' -Group $Group
            $res | Set-ClusterParameter -Multiple @{
                CommandLine      = "`"$adapter`" app $Name"
                CurrentDirectory = (Split-Path -Parent $adapter)
                UseNetworkName   = [int][bool]$UseNetworkName
            }
        }
        'Script' {
            New-Item -ItemType Directory -Force -Path (Split-Path -Parent $ScriptPath) | Out-Null
            & $adapter script $Name --output $ScriptPath
            if ($LASTEXITCODE -ne 0) { throw "hale-wsfc script $Name failed with exit code $LASTEXITCODE" }
            $res = Add-ClusterResource @c -Name $ResourceName -ResourceType 'Generic Script' -Group $Group -SeparateMonitor
            $res | Set-ClusterParameter -Name ScriptFilePath -Value $ScriptPath
        }
    }
    $res.PendingTimeout = $PendingTimeoutSec * 1000
    $res.RestartAction = $RestartAction
    $res.RestartThreshold = $RestartThreshold
    $res.RestartPeriod = $RestartPeriodSec * 1000
    foreach ($p in $DependsOn) {
        Add-ClusterResourceDependency @c -Resource $ResourceName -Provider $p | Out-Null
    }
    Get-ClusterResource @c -Name $ResourceName
}

function Get-HaleClusterResource {
    <# The cluster resource with its private parameters and restart settings. #>
    param([Parameter(Mandatory)] [string] $Name, [string] $Cluster = '.')
    $r = Get-ClusterResource -Cluster $Cluster -Name $Name
    [pscustomobject]@{
        Name             = $r.Name
        State            = $r.State
        OwnerGroup       = $r.OwnerGroup
        ResourceType     = $r.ResourceType
        PendingTimeout   = $r.PendingTimeout
        RestartAction    = $r.RestartAction
        RestartThreshold = $r.RestartThreshold
        RestartPeriod    = $r.RestartPeriod
        SeparateMonitor  = $r.SeparateMonitor
        Parameters       = ($r | Get-ClusterParameter)
    }
}

function Remove-HaleClusterResource {
    <#
    .SYNOPSIS
    Take the resource offline (the agent's stop runs in Service and Script modes), remove it,
    and with -RemoveGroup the group too when it is left empty.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(Mandatory)] [string] $Name,
        [switch] $RemoveGroup,
        [string] $Cluster = '.'
    )
    $c = @{ Cluster = $Cluster }
    $r = Get-ClusterResource @c -Name $Name -ErrorAction SilentlyContinue
    if (-not $r) { return }
    $group = $r.OwnerGroup.Name
    if ($PSCmdlet.ShouldProcess($Name, 'remove the cluster resource')) {
        Stop-ClusterResource @c -Name $Name | Out-Null
        Remove-ClusterResource @c -Name $Name -Force
        if ($RemoveGroup -and -not (Get-ClusterGroup @c -Name $group | Get-ClusterResource)) {
            Remove-ClusterGroup @c -Name $group -Force
        }
    }
}

function Uninstall-HaleResource {
    <# On this node: remove the service hale-<Name> and the stored configuration. #>
    [CmdletBinding(SupportsShouldProcess)]
    param([Parameter(Mandatory)] [ValidatePattern('^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$')] [string] $Name)
    $adapter = Get-HaleAdapterPath
    if ($PSCmdlet.ShouldProcess($Name, 'hale-wsfc uninstall and unconfigure')) {
        & $adapter uninstall $Name
        & $adapter unconfigure $Name
    }
}

Export-ModuleMember -Function Install-HaleResource, New-HaleClusterResource, Get-HaleClusterResource,
    Remove-HaleClusterResource, Uninstall-HaleResource
