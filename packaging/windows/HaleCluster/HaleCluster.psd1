@{
    RootModule        = 'HaleCluster.psm1'
    ModuleVersion     = '0.1.0'
    GUID              = '6f7c3e52-2b1d-4f0e-9a4e-3d8a61c0b7a1'
    Author            = 'Hale'
    Description       = 'Create and remove Windows Server Failover Clustering resources that run Hale agents through hale-wsfc.exe.'
    PowerShellVersion = '5.1'
    RequiredModules   = @('FailoverClusters')
    FunctionsToExport = @('Install-HaleResource', 'New-HaleClusterResource', 'Get-HaleClusterResource',
                          'Remove-HaleClusterResource', 'Uninstall-HaleResource')
    CmdletsToExport   = @()
    VariablesToExport = @()
    AliasesToExport   = @()
}
